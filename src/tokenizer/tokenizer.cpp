// Loading tokenizer.json into the pipeline stages and running them. The order of encoding follows the
// Rust tokenizers crate: added tokens with normalized=false are cut from the raw text, each remaining
// stretch is normalized, normalized added tokens are cut from that, and what is left is pre-tokenized
// and encoded word by word with BPE.
#include "tokenizer/tokenizer.h"

#include <fstream>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "tokenizer/added_tokens.h"
#include "tokenizer/bpe_model.h"
#include "tokenizer/decoder.h"
#include "tokenizer/json_fields.h"
#include "tokenizer/normalizer.h"
#include "tokenizer/post_processor.h"
#include "tokenizer/pre_tokenizer.h"
#include "tokenizer/tokenizer_config.h"
#include "tokenizer/utf8.h"

namespace shardlm {

using nlohmann::json;

struct Tokenizer::Impl {
  std::unique_ptr<Normalizer> normalizer;
  std::unique_ptr<PreTokenizer> pre_tokenizer;
  BpeModel model;
  std::unique_ptr<Decoder> decoder;
  SpecialTokenTemplate special_token_template;
  AddedTokenMatcher raw_added_tokens;         // normalized=false, matched in the input as given
  AddedTokenMatcher normalized_added_tokens;  // normalized=true, matched after normalization
  TokenIdMap added_token_ids;                 // looked up before the model vocab, as in HF
  std::vector<std::string> token_of_id;
  std::vector<uint8_t> id_flags;
  size_t n_distinct_tokens = 0;
  std::optional<int32_t> bos_id, eos_id;

  static constexpr uint8_t kKnownId = 1, kSpecialId = 2;

  explicit Impl(BpeModel bpe) : model(std::move(bpe)) {}
  bool is_known(int32_t id) const { return id >= 0 && static_cast<size_t>(id) < id_flags.size() && (id_flags[id] & kKnownId); }
  std::optional<int32_t> lookup(std::string_view token) const {
    if (const auto it = added_token_ids.find(token); it != added_token_ids.end()) return it->second;
    if (const auto it = model.vocab().find(token); it != model.vocab().end()) return it->second;
    return std::nullopt;
  }
  void encode_plain(std::string_view text, size_t original_offset, std::vector<int32_t>& ids) const;
};

namespace {

std::string read_file(const std::filesystem::path& path) {
  // Opening a FIFO would wait for a writer forever, and a device may never end: regular files only.
  std::error_code error;
  const std::filesystem::file_status status = std::filesystem::status(path, error);
  if (!error && status.type() != std::filesystem::file_type::regular) fail("{}: not a regular file", path.string());
  std::ifstream file(path, std::ios::binary);
  if (!file) fail("{}: cannot open file", path.string());
  std::ostringstream contents;
  contents << file.rdbuf();
  if (!file.good() && !file.eof()) fail("{}: read error", path.string());
  return std::move(contents).str();
}

std::vector<AddedToken> parse_added_tokens(const json& root, std::string_view source) {
  std::vector<AddedToken> tokens;
  const auto it = root.find("added_tokens");
  if (it == root.end() || it->is_null()) return tokens;
  const std::string where = fmt::format("{}: added_tokens", source);
  if (!it->is_array()) fail("{}: must be a list", where);
  for (const auto& entry : *it) {
    AddedToken token;
    const auto& id = json_fields::required(entry, "id", where);
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() > INT32_MAX) fail("{}: invalid id {}", where, id.dump());
    token.id = id.get<int32_t>();
    token.content = json_fields::required_string(entry, "content", where);
    if (token.content.empty()) fail("{}: token {} has empty content", where, token.id);
    token.special = json_fields::bool_or(entry, "special", false, where);
    token.single_word = json_fields::bool_or(entry, "single_word", false, where);
    token.lstrip = json_fields::bool_or(entry, "lstrip", false, where);
    token.rstrip = json_fields::bool_or(entry, "rstrip", false, where);
    token.normalized = json_fields::bool_or(entry, "normalized", !token.special, where);
    tokens.push_back(std::move(token));
  }
  return tokens;
}

// Transformers registers every special token named in tokenizer_config.json as a special added token.
// Those already in the vocabulary keep their id; names missing from it are ignored (Transformers would
// append them as new ids, which no real checkpoint relies on).
void register_named_special_tokens(std::vector<AddedToken>& added, const TokenizerConfig& config, const TokenIdMap& vocab) {
  for (const NamedSpecialToken& named : config.special_tokens) {
    const auto existing = std::find_if(added.begin(), added.end(), [&](const AddedToken& t) { return t.content == named.content; });
    if (existing != added.end()) {
      existing->special = true;
      continue;
    }
    const auto it = vocab.find(named.content);
    if (it == vocab.end()) continue;
    added.push_back({it->second, named.content, named.single_word, named.lstrip, named.rstrip, named.normalized, true});
  }
}

}  // namespace

Tokenizer::Tokenizer(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}

Tokenizer Tokenizer::from_dir(const std::filesystem::path& model_dir) {
  const auto tokenizer_path = model_dir / "tokenizer.json";
  const auto config_path = model_dir / "tokenizer_config.json";
  const std::string tokenizer_json = read_file(tokenizer_path);
  const std::string config_json = std::filesystem::exists(config_path) ? read_file(config_path) : std::string();
  return from_json(tokenizer_json, config_json, tokenizer_path.string());
}

Tokenizer Tokenizer::from_json(std::string_view tokenizer_json, std::string_view tokenizer_config_json, const std::string& source_name) {
  const std::filesystem::path source_path(source_name);
  const std::string config_source = source_path.filename() == "tokenizer.json"
                                        ? (source_path.parent_path() / "tokenizer_config.json").string()
                                        : fmt::format("{} (tokenizer_config.json)", source_name);
  const TokenizerConfig config = parse_tokenizer_config(tokenizer_config_json, config_source);

  json root;
  try {
    root = json::parse(tokenizer_json);
  } catch (const json::parse_error& e) {
    fail("{}: malformed JSON: {}", source_name, e.what());
  }
  if (!root.is_object()) fail("{}: top level must be an object", source_name);
  if (!root.contains("model") || root["model"].is_null()) fail("{}: missing \"model\"", source_name);

  auto impl = std::make_shared<Impl>(BpeModel::from_json(root["model"], source_name));
  const json null_value;
  const auto component = [&](const char* key) -> const json& { return root.contains(key) ? root[key] : null_value; };
  impl->normalizer = make_normalizer(component("normalizer"), source_name);
  impl->pre_tokenizer = make_pre_tokenizer(component("pre_tokenizer"), source_name);
  impl->decoder = make_decoder(component("decoder"), source_name);

  std::vector<AddedToken> added = parse_added_tokens(root, source_name);
  register_named_special_tokens(added, config, impl->model.vocab());

  // Id tables over the model vocab and the added tokens (an added token may reuse a vocab id).
  int32_t max_id = -1;
  for (const auto& [token, id] : impl->model.vocab()) max_id = std::max(max_id, id);
  for (const AddedToken& token : added) max_id = std::max(max_id, token.id);
  impl->token_of_id.resize(static_cast<size_t>(max_id + 1));
  impl->id_flags.assign(static_cast<size_t>(max_id + 1), 0);
  for (const auto& [token, id] : impl->model.vocab()) {
    impl->token_of_id[id] = token;
    impl->id_flags[id] = Impl::kKnownId;
  }
  impl->n_distinct_tokens = impl->model.vocab().size();
  std::vector<std::string> raw_patterns, normalized_patterns;
  std::vector<AddedToken> raw_tokens, normalized_tokens;
  for (const AddedToken& token : added) {
    if (!impl->model.vocab().contains(token.content) && !impl->added_token_ids.contains(token.content)) ++impl->n_distinct_tokens;
    impl->added_token_ids[token.content] = token.id;
    impl->token_of_id[token.id] = token.content;
    impl->id_flags[token.id] = Impl::kKnownId | (token.special ? Impl::kSpecialId : 0);
    if (token.normalized && impl->normalizer) {
      // Normalized tokens are looked for in normalized text, so their pattern is normalized too. HF
      // also decodes them from the normalized form (a Prepend("▁") token decodes through the "▁" rules).
      std::string pattern = impl->normalizer->normalize(token.content);
      impl->token_of_id[token.id] = pattern;
      normalized_patterns.push_back(std::move(pattern));
      normalized_tokens.push_back(token);
    } else {
      raw_patterns.push_back(token.content);
      raw_tokens.push_back(token);
    }
  }
  impl->raw_added_tokens = AddedTokenMatcher(std::move(raw_patterns), std::move(raw_tokens));
  impl->normalized_added_tokens = AddedTokenMatcher(std::move(normalized_patterns), std::move(normalized_tokens));

  impl->special_token_template = make_post_processor(component("post_processor"), source_name);

  const auto named_id = [&](const std::optional<NamedSpecialToken>& token) -> std::optional<int32_t> {
    return token ? impl->lookup(token->content) : std::nullopt;
  };
  impl->bos_id = named_id(config.bos_token);
  if (!impl->bos_id && !impl->special_token_template.before.empty()) impl->bos_id = impl->special_token_template.before.front();
  impl->eos_id = named_id(config.eos_token);
  if (!impl->eos_id && !impl->special_token_template.after.empty()) impl->eos_id = impl->special_token_template.after.back();
  for (const auto& ids : {impl->special_token_template.before, impl->special_token_template.after}) {
    for (int32_t id : ids) {
      if (!impl->is_known(id)) fail("{}: post_processor adds id {}, which is not in the vocabulary", source_name, id);
    }
  }
  return Tokenizer(std::move(impl));
}

void Tokenizer::Impl::encode_plain(std::string_view text, size_t original_offset, std::vector<int32_t>& ids) const {
  const std::string normalized = normalizer ? normalizer->normalize(text) : std::string(text);
  for (const TextSection& section : normalized_added_tokens.split(normalized)) {
    if (section.token_id) {
      ids.push_back(*section.token_id);
      continue;
    }
    if (section.begin == section.end) continue;
    std::vector<PreToken> pieces{{normalized.substr(section.begin, section.end - section.begin), original_offset == 0 && section.begin == 0}};
    if (pre_tokenizer) pre_tokenizer->pre_tokenize(pieces);
    for (const PreToken& piece : pieces) model.tokenize(piece.text, ids);
  }
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_special_tokens) const {
  if (const size_t bad = utf8::first_invalid_offset(text); bad != utf8::kInvalidOffset) {
    fail("encode: input is not valid UTF-8 (byte {} of {})", bad, text.size());
  }
  std::vector<int32_t> ids;
  if (add_special_tokens) ids = impl_->special_token_template.before;
  for (const TextSection& section : impl_->raw_added_tokens.split(text)) {
    if (section.token_id) {
      ids.push_back(*section.token_id);
    } else {
      impl_->encode_plain(text.substr(section.begin, section.end - section.begin), section.begin, ids);
    }
  }
  if (add_special_tokens) ids.insert(ids.end(), impl_->special_token_template.after.begin(), impl_->special_token_template.after.end());
  return ids;
}

std::string Tokenizer::decode(std::span<const int32_t> ids, bool skip_special_tokens) const {
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (int32_t id : ids) {
    if (!impl_->is_known(id)) fail("decode: id {} is not in the vocabulary (ids run from 0 to {})", id, impl_->id_flags.size() - 1);
    if (skip_special_tokens && (impl_->id_flags[id] & Impl::kSpecialId)) continue;
    tokens.push_back(impl_->token_of_id[id]);
  }
  std::string text;
  if (impl_->decoder) {
    impl_->decoder->decode_chain(tokens);
    for (const std::string& piece : tokens) text += piece;
  } else {
    // Without a decoder HF joins the token strings with spaces.
    for (size_t i = 0; i < tokens.size(); ++i) text += (i ? " " : "") + tokens[i];
  }
  return text;
}

size_t Tokenizer::vocab_size() const { return impl_->n_distinct_tokens; }

std::optional<int32_t> Tokenizer::token_to_id(std::string_view token) const { return impl_->lookup(token); }

std::optional<std::string> Tokenizer::id_to_token(int32_t id) const {
  if (!impl_->is_known(id)) return std::nullopt;
  return impl_->token_of_id[id];
}

std::optional<int32_t> Tokenizer::bos_token_id() const { return impl_->bos_id; }
std::optional<int32_t> Tokenizer::eos_token_id() const { return impl_->eos_id; }

bool Tokenizer::is_special(int32_t id) const { return impl_->is_known(id) && (impl_->id_flags[id] & Impl::kSpecialId); }

}  // namespace shardlm
