// Memory sizes as users write them ("20GiB", "1.5GB", "4096") and as shardlm prints them. The
// units are those of Accelerate's convert_file_size_to_int, so a max_memory value copied from a
// Transformers script means the same bytes here: KiB/MiB/GiB are powers of two, KB/MB/GB powers of
// ten, the unit is case-insensitive, and a decimal unit written with a lowercase final "b"
// ("10Gb", "10gb") is read as bits, as Accelerate does.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace shardlm {

// Bytes in `text`: a non-negative number followed by one of the units above, or a plain integer
// (bytes). `option` names where the text came from ("--max-memory"), for the error message.
int64_t parse_memory_size(std::string_view text, std::string_view option);

// "512 B", "1.50 KiB", "80.00 GiB": binary units, two decimals.
std::string format_memory_size(int64_t bytes);

}  // namespace shardlm
