// Added tokens (tokenizer.json "added_tokens"): strings such as <|begin_of_text|> or <s> that are cut
// out of the input before normalization and pre-tokenization and map straight to their id. Like HF,
// tokens with normalized=false are matched in the raw text, normalized=true ones in normalized text,
// leftmost-longest, honouring lstrip / rstrip / single_word.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace shardlm {

class Normalizer;

struct AddedToken {
  int32_t id = 0;
  std::string content;
  bool single_word = false;
  bool lstrip = false;
  bool rstrip = false;
  bool normalized = false;
  bool special = false;
};

// A stretch of the input: either plain text to tokenize, or one added token.
struct TextSection {
  size_t begin = 0, end = 0;  // byte range in the string that was split
  std::optional<int32_t> token_id;
};

class AddedTokenMatcher {
 public:
  AddedTokenMatcher() = default;
  // `patterns[i]` is the string to look for and `tokens[i]` the token it stands for.
  AddedTokenMatcher(std::vector<std::string> patterns, std::vector<AddedToken> tokens);

  // Cuts `text` into plain sections and token sections, in order, covering all of it except whitespace
  // swallowed by lstrip / rstrip. Plain sections may be empty only when `text` is.
  std::vector<TextSection> split(std::string_view text) const;

 private:
  std::vector<std::string> patterns_;
  std::vector<AddedToken> tokens_;
  // Pattern indices bucketed by first byte, longest first, for leftmost-longest matching.
  std::vector<std::vector<uint32_t>> by_first_byte_;
};

}  // namespace shardlm
