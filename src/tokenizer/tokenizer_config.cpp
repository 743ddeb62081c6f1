// tokenizer_config.json handling. Transformers 5's LlamaTokenizer keeps only vocab, merges and the
// post-processor from tokenizer.json and builds: no normalizer, Metaspace("▁", split=false) with
// prepend_scheme "first" (or "always" with legacy=true, "never" with add_prefix_space=false), BPE with
// byte_fallback and fuse_unk but no unk_token, and the decoder Replace("▁"," ") + ByteFallback + Fuse
// (+ Strip(" ", 1, 0) when it adds a prefix space). We express that as an edit of the JSON so the one
// loader builds it.
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

std::optional<bool> optional_bool(const json& config, std::string_view key, std::string_view source) {
  const auto it = config.find(key);
  if (it == config.end() || it->is_null()) return std::nullopt;
  if (!it->is_boolean()) fail("{}: \"{}\" must be true or false", source, key);
  return it->get<bool>();
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
  config.add_bos_token = optional_bool(root, "add_bos_token", source);
  config.add_eos_token = optional_bool(root, "add_eos_token", source);
  config.legacy = optional_bool(root, "legacy", source);
  config.add_prefix_space = optional_bool(root, "add_prefix_space", source);
  if (const auto it = root.find("tokenizer_class"); it != root.end() && it->is_string()) config.tokenizer_class = it->get<std::string>();
  return config;
}

void apply_tokenizer_class(json& tokenizer_json, const TokenizerConfig& config) {
  if (config.tokenizer_class != "LlamaTokenizer" && config.tokenizer_class != "LlamaTokenizerFast") return;
  if (!tokenizer_json.is_object() || !tokenizer_json.contains("model") || !tokenizer_json["model"].is_object()) return;
  const bool add_prefix_space = config.add_prefix_space.value_or(true);
  const char* prepend_scheme = !add_prefix_space ? "never" : config.legacy.value_or(false) ? "always" : "first";
  tokenizer_json["normalizer"] = nullptr;
  tokenizer_json["pre_tokenizer"] = {{"type", "Metaspace"}, {"replacement", "\u2581"}, {"prepend_scheme", prepend_scheme}, {"split", false}};
  json decoders = json::array({
      {{"type", "Replace"}, {"pattern", {{"String", "\u2581"}}}, {"content", " "}},
      {{"type", "ByteFallback"}},
      {{"type", "Fuse"}},
  });
  if (add_prefix_space) decoders.push_back({{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}});
  tokenizer_json["decoder"] = {{"type", "Sequence"}, {"decoders", std::move(decoders)}};
  json& model = tokenizer_json["model"];
  model["byte_fallback"] = true;
  model["fuse_unk"] = true;
  model["unk_token"] = nullptr;
  model["ignore_merges"] = false;
  model["continuing_subword_prefix"] = nullptr;
  model["end_of_word_suffix"] = nullptr;
}

}  // namespace shardlm
