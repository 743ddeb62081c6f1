// What tokenizer_config.json contributes, the way Transformers 5 loads a tokenizer.json: the bos / eos
// token names (for bos_token_id / eos_token_id) and the named special tokens (bos, eos, unk, pad, ...),
// which become special added tokens. Everything else in tokenization comes from tokenizer.json alone:
// Transformers 5 drops add_bos_token / add_eos_token before building the tokenizer (the reference
// fixtures llama2-sentencepiece-{eos,nobos,nopp} show it), so those flags are read by nobody.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

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
};

// Parses tokenizer_config.json; empty text gives the defaults of a missing file.
TokenizerConfig parse_tokenizer_config(std::string_view text, std::string_view source);

}  // namespace shardlm
