// What tokenizer_config.json changes about tokenization, applied the way Transformers 5 does when it
// loads a tokenizer: add_bos_token / add_eos_token rebuild the post-processor, the named special tokens
// (bos, eos, unk, pad, ...) become special added tokens, and tokenizer_class "LlamaTokenizer(Fast)"
// replaces the normalizer, pre-tokenizer and decoder of tokenizer.json with the class's own.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace shardlm {

// A special token named in tokenizer_config.json (bos_token etc.): a string, or an object with
// "content" and the AddedToken flags.
struct NamedSpecialToken {
  std::string content;
  bool lstrip = false, rstrip = false, single_word = false, normalized = false;
};

struct TokenizerConfig {
  std::optional<NamedSpecialToken> bos_token, eos_token;
  std::vector<NamedSpecialToken> special_tokens;  // every named special token, bos and eos included
  // Present only when the file sets them; their presence is what makes Transformers rebuild the
  // post-processor.
  std::optional<bool> add_bos_token, add_eos_token;
  std::string tokenizer_class;
  std::optional<bool> legacy, add_prefix_space;
};

// Parses tokenizer_config.json; empty text gives the defaults of a missing file.
TokenizerConfig parse_tokenizer_config(std::string_view text, std::string_view source);

// Rewrites tokenizer.json in place where the configured Transformers tokenizer class builds its own
// pipeline instead of reading the file's (today: LlamaTokenizer / LlamaTokenizerFast).
void apply_tokenizer_class(nlohmann::json& tokenizer_json, const TokenizerConfig& config);

}  // namespace shardlm
