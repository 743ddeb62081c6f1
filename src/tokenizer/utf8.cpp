// UTF-8 validation and lossy decoding with the exact replacement rules of Rust's from_utf8_lossy
// (Unicode "substitution of maximal subparts"), so decoded text matches HF byte for byte.
#include "tokenizer/utf8.h"

#include <utf8proc.h>

namespace shardlm::utf8 {
namespace {

// Length of the well-formed sequence at bytes[pos], or 0 when it is ill-formed there. When ill-formed,
// `maximal_subpart` receives how many bytes form the longest prefix that could still have been valid
// (at least 1): that whole prefix is replaced by a single U+FFFD.
size_t well_formed_length(std::string_view bytes, size_t pos, size_t& maximal_subpart) {
  const auto byte_at = [&](size_t i) -> int { return i < bytes.size() ? static_cast<unsigned char>(bytes[i]) : -1; };
  const int lead = byte_at(pos);
  maximal_subpart = 1;
  if (lead < 0x80) return 1;
  size_t n_continuation = 0;
  int second_min = 0x80, second_max = 0xBF;  // Table 3-7 of the Unicode standard.
  if (lead >= 0xC2 && lead <= 0xDF) {
    n_continuation = 1;
  } else if (lead == 0xE0) {
    n_continuation = 2, second_min = 0xA0;
  } else if ((lead >= 0xE1 && lead <= 0xEC) || lead == 0xEE || lead == 0xEF) {
    n_continuation = 2;
  } else if (lead == 0xED) {
    n_continuation = 2, second_max = 0x9F;
  } else if (lead == 0xF0) {
    n_continuation = 3, second_min = 0x90;
  } else if (lead >= 0xF1 && lead <= 0xF3) {
    n_continuation = 3;
  } else if (lead == 0xF4) {
    n_continuation = 3, second_max = 0x8F;
  } else {
    return 0;
  }
  for (size_t i = 1; i <= n_continuation; ++i) {
    const int byte = byte_at(pos + i);
    const int min = i == 1 ? second_min : 0x80, max = i == 1 ? second_max : 0xBF;
    if (byte < min || byte > max) {
      maximal_subpart = i;
      return 0;
    }
  }
  return n_continuation + 1;
}

}  // namespace

size_t first_invalid_offset(std::string_view bytes) {
  size_t pos = 0, subpart = 0;
  while (pos < bytes.size()) {
    const size_t length = well_formed_length(bytes, pos, subpart);
    if (length == 0) return pos;
    pos += length;
  }
  return kInvalidOffset;
}

std::string to_valid_lossy(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  size_t pos = 0, subpart = 0;
  while (pos < bytes.size()) {
    const size_t length = well_formed_length(bytes, pos, subpart);
    if (length == 0) {
      out += kReplacementCharacter;
      pos += subpart;
    } else {
      out.append(bytes.substr(pos, length));
      pos += length;
    }
  }
  return out;
}

char32_t decode_next(std::string_view text, size_t& pos) {
  const auto lead = static_cast<unsigned char>(text[pos]);
  const size_t length = sequence_length(lead);
  char32_t codepoint = length == 1 ? lead : lead & (0x7F >> length);
  for (size_t i = 1; i < length; ++i) codepoint = (codepoint << 6) | (static_cast<unsigned char>(text[pos + i]) & 0x3F);
  pos += length;
  return codepoint;
}

void append_codepoint(std::string& out, char32_t codepoint) {
  if (codepoint < 0x80) {
    out += static_cast<char>(codepoint);
  } else if (codepoint < 0x800) {
    out += static_cast<char>(0xC0 | (codepoint >> 6));
    out += static_cast<char>(0x80 | (codepoint & 0x3F));
  } else if (codepoint < 0x10000) {
    out += static_cast<char>(0xE0 | (codepoint >> 12));
    out += static_cast<char>(0x80 | ((codepoint >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (codepoint & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (codepoint >> 18));
    out += static_cast<char>(0x80 | ((codepoint >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((codepoint >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (codepoint & 0x3F));
  }
}

bool is_whitespace(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

bool is_word_character(char32_t c) {
  // Join_Control, and the letters that are Alphabetic without being L*, M* or Nl (circled and squared
  // Latin letters, category So with Other_Alphabetic).
  if (c == 0x200C || c == 0x200D || (c >= 0x24B6 && c <= 0x24E9) || (c >= 0x1F130 && c <= 0x1F149) ||
      (c >= 0x1F150 && c <= 0x1F169) || (c >= 0x1F170 && c <= 0x1F189)) {
    return true;
  }
  switch (utf8proc_category(static_cast<utf8proc_int32_t>(c))) {
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT: case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO: case UTF8PROC_CATEGORY_MN: case UTF8PROC_CATEGORY_MC: case UTF8PROC_CATEGORY_ME:
    case UTF8PROC_CATEGORY_ND: case UTF8PROC_CATEGORY_NL: case UTF8PROC_CATEGORY_PC:
      return true;
    default:
      return false;
  }
}

}  // namespace shardlm::utf8
