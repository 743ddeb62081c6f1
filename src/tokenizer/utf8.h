// UTF-8 helpers shared by the tokenizer stages. Hugging Face tokenizers work on Rust `str`, which is
// always valid UTF-8, so we validate input once at the door and later stages may assume validity.
// Decoding output bytes back to text follows Rust's `String::from_utf8_lossy`: each maximal invalid
// subsequence becomes one U+FFFD, which is what HF's ByteLevel decoder returns.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace shardlm::utf8 {

inline constexpr std::string_view kReplacementCharacter = "\xEF\xBF\xBD";  // U+FFFD
inline constexpr size_t kInvalidOffset = std::string_view::npos;

// Byte offset of the first byte that does not start a well-formed UTF-8 sequence, or kInvalidOffset
// when the whole string is valid.
size_t first_invalid_offset(std::string_view bytes);

// Rust's String::from_utf8_lossy: valid sequences are copied, each maximal invalid subpart becomes
// one U+FFFD.
std::string to_valid_lossy(std::string_view bytes);

// Number of bytes of the character starting with this lead byte. Only meaningful on valid UTF-8.
inline size_t sequence_length(unsigned char lead) {
  if (lead < 0x80) return 1;
  if (lead < 0xE0) return 2;
  if (lead < 0xF0) return 3;
  return 4;
}

// Decodes the character at `pos` of valid UTF-8 and advances `pos` past it.
char32_t decode_next(std::string_view text, size_t& pos);

void append_codepoint(std::string& out, char32_t codepoint);

// Rust's char::is_whitespace (the Unicode White_Space property), which HF uses for lstrip/rstrip.
bool is_whitespace(char32_t codepoint);

// The regex class \w as the Rust regex crate defines it (Alphabetic, M*, Nd, Pc, Join_Control); HF
// uses it to decide whether an added token with single_word stands alone.
bool is_word_character(char32_t codepoint);

}  // namespace shardlm::utf8
