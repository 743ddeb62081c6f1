// Leftmost-longest matching of added tokens. HF uses an Aho-Corasick automaton; with the few hundred
// added tokens real models have, bucketing candidates by first byte is as fast and much simpler.
// A match rejected by single_word is skipped as a whole, as HF's match iterator does.
#include "tokenizer/added_tokens.h"

#include <algorithm>

#include "tokenizer/utf8.h"

namespace shardlm {
namespace {

// Last code point of valid UTF-8 `text` (which must be non-empty).
char32_t last_codepoint(std::string_view text) {
  size_t start = text.size() - 1;
  while (start > 0 && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) --start;
  return utf8::decode_next(text, start);
}

// Byte offset where the trailing whitespace of `text` begins.
size_t trailing_whitespace_begin(std::string_view text) {
  size_t end = text.size();
  while (end > 0) {
    size_t start = end - 1;
    while (start > 0 && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) --start;
    size_t cursor = start;
    if (!utf8::is_whitespace(utf8::decode_next(text, cursor))) break;
    end = start;
  }
  return end;
}

// Length in bytes of the leading whitespace of `text`.
size_t leading_whitespace_length(std::string_view text) {
  size_t pos = 0;
  while (pos < text.size()) {
    size_t cursor = pos;
    if (!utf8::is_whitespace(utf8::decode_next(text, cursor))) break;
    pos = cursor;
  }
  return pos;
}

}  // namespace

AddedTokenMatcher::AddedTokenMatcher(std::vector<std::string> patterns, std::vector<AddedToken> tokens)
    : patterns_(std::move(patterns)), tokens_(std::move(tokens)), by_first_byte_(256) {
  for (uint32_t i = 0; i < patterns_.size(); ++i) {
    if (!patterns_[i].empty()) by_first_byte_[static_cast<unsigned char>(patterns_[i][0])].push_back(i);
  }
  for (auto& bucket : by_first_byte_) {
    std::stable_sort(bucket.begin(), bucket.end(), [&](uint32_t a, uint32_t b) { return patterns_[a].size() > patterns_[b].size(); });
  }
}

std::vector<TextSection> AddedTokenMatcher::split(std::string_view text) const {
  std::vector<TextSection> sections;
  size_t plain_begin = 0;  // start of the text not yet assigned to a section
  size_t pos = 0;
  while (!patterns_.empty() && pos < text.size()) {
    const auto& bucket = by_first_byte_[static_cast<unsigned char>(text[pos])];
    const auto hit = std::find_if(bucket.begin(), bucket.end(), [&](uint32_t i) { return text.substr(pos).starts_with(patterns_[i]); });
    if (hit == bucket.end()) {
      ++pos;
      continue;
    }
    const AddedToken& token = tokens_[*hit];
    size_t begin = pos, end = pos + patterns_[*hit].size();
    pos = end;
    if (token.single_word) {
      const bool word_before = begin > 0 && utf8::is_word_character(last_codepoint(text.substr(0, begin)));
      size_t cursor = end;
      const bool word_after = end < text.size() && utf8::is_word_character(utf8::decode_next(text, cursor));
      if (word_before || word_after) continue;
    }
    // lstrip never reaches back into text an earlier token already took.
    if (token.lstrip) begin = std::max(trailing_whitespace_begin(text.substr(0, begin)), plain_begin);
    if (token.rstrip) end += leading_whitespace_length(text.substr(end));
    if (plain_begin < begin) sections.push_back({plain_begin, begin, std::nullopt});
    sections.push_back({begin, end, token.id});
    plain_begin = end;
    pos = std::max(pos, end);
  }
  if (plain_begin < text.size() || text.empty()) sections.push_back({plain_begin, text.size(), std::nullopt});
  return sections;
}

}  // namespace shardlm
