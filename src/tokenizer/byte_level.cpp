// Builds the GPT-2 bytes_to_unicode table once: bytes that are already printable Latin-1 keep their
// code point, the other 68 bytes are numbered from U+0100 upward in byte order.
#include "tokenizer/byte_level.h"

#include <array>

#include "tokenizer/utf8.h"

namespace shardlm::byte_level {
namespace {

struct Table {
  std::array<char32_t, 256> codepoint_of_byte{};
  std::array<std::string, 256> utf8_of_byte;
  std::array<int16_t, 512> byte_of_codepoint{};  // every table code point is below U+0200; -1 = none

  Table() {
    const auto is_printable = [](int b) { return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF); };
    byte_of_codepoint.fill(-1);
    char32_t next_extra = 0x100;
    for (int b = 0; b < 256; ++b) {
      codepoint_of_byte[b] = is_printable(b) ? static_cast<char32_t>(b) : next_extra++;
      utf8::append_codepoint(utf8_of_byte[b], codepoint_of_byte[b]);
      byte_of_codepoint[codepoint_of_byte[b]] = static_cast<int16_t>(b);
    }
  }
};

const Table& table() {
  static const Table instance;
  return instance;
}

}  // namespace

void append_encoded(std::string_view bytes, std::string& out) {
  const Table& t = table();
  for (char byte : bytes) out += t.utf8_of_byte[static_cast<unsigned char>(byte)];
}

std::optional<uint8_t> decode_codepoint(char32_t codepoint) {
  if (codepoint >= 512) return std::nullopt;
  const int16_t byte = table().byte_of_codepoint[codepoint];
  if (byte < 0) return std::nullopt;
  return static_cast<uint8_t>(byte);
}

}  // namespace shardlm::byte_level
