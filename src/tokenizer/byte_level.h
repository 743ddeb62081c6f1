// GPT-2's reversible byte <-> printable-character table. Byte-level BPE vocabularies spell every byte
// as one visible code point (space is "Ġ" U+0120, newline "Ċ" U+010A) so that merges never see raw
// control bytes; the ByteLevel pre-tokenizer applies the table and the ByteLevel decoder inverts it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace shardlm::byte_level {

// Appends the byte-level spelling of `bytes`: each byte becomes its printable code point, in UTF-8.
void append_encoded(std::string_view bytes, std::string& out);

// The byte that a printable code point stands for; nullopt for code points outside the table.
std::optional<uint8_t> decode_codepoint(char32_t codepoint);

}  // namespace shardlm::byte_level
