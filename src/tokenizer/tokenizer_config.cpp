// tokenizer_config.json parsing: the named special tokens, given either as a string or as an AddedToken
// object, under the names Transformers 4 and 5 use.
#include "tokenizer/tokenizer_config.h"

#include <fmt/format.h>

#include "core/error.h"
#include "tokenizer/json_fields.h"

namespace shardlm {
namespace {

using nlohmann::json;

std::optional<NamedSpecialToken> parse_named_token(const json& config, std::string_view key, std::string_view source) {
  const auto it = config.find(key);
  if (it == config.end() || it->is_null()) return std::nullopt;
  if (it->is_string()) return NamedSpecialToken{it->get<std::string>()};
  const std::string where = fmt::format("{}: {}", source, key);
  if (!it->is_object()) fail("{}: must be a string or an object with \"content\"", where);
  NamedSpecialToken token;
  token.content = json_fields::required_string(*it, "content", where);
  token.lstrip = json_fields::bool_or(*it, "lstrip", false, where);
  token.rstrip = json_fields::bool_or(*it, "rstrip", false, where);
  token.single_word = json_fields::bool_or(*it, "single_word", false, where);
  token.normalized = json_fields::bool_or(*it, "normalized", false, where);
  return token;
}

}  // namespace

TokenizerConfig parse_tokenizer_config(std::string_view text, std::string_view source) {
  TokenizerConfig config;
  if (text.empty()) return config;
  json root;
  try {
    root = json::parse(text);
  } catch (const json::parse_error& e) {
    fail("{}: malformed JSON: {}", source, e.what());
  }
  if (!root.is_object()) fail("{}: top level must be an object", source);

  config.bos_token = parse_named_token(root, "bos_token", source);
  config.eos_token = parse_named_token(root, "eos_token", source);
  for (const char* key : {"bos_token", "eos_token", "unk_token", "pad_token", "sep_token", "cls_token", "mask_token"}) {
    if (auto token = parse_named_token(root, key, source)) config.special_tokens.push_back(std::move(*token));
  }
  // Transformers 4 calls the list additional_special_tokens, 5 calls it extra_special_tokens (a list,
  // or a dict of name -> token).
  for (const char* key : {"additional_special_tokens", "extra_special_tokens"}) {
    const auto it = root.find(key);
    if (it == root.end() || it->is_null()) continue;
    if (!it->is_array() && !it->is_object()) fail("{}: \"{}\" must be a list", source, key);
    for (const auto& entry : *it) {
      json holder = {{"token", entry}};
      if (auto token = parse_named_token(holder, "token", fmt::format("{}: {}", source, key))) config.special_tokens.push_back(std::move(*token));
    }
  }
  return config;
}

}  // namespace shardlm
