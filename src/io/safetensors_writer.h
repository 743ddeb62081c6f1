// Writes one safetensors file: the 8-byte header length, the JSON header (padded with spaces to 8
// bytes, as Hugging Face writes it, so the data section starts 8-byte aligned) and the data
// section, tensors back to back in the order given. The data is asked for a piece at a time, so a checkpoint larger than
// memory (a random 30B model for a benchmark) streams to disk.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "core/dtype.h"

namespace shardlm {

struct TensorToWrite {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  // Fills `out` with the tensor's bytes from byte `offset` on; called for consecutive pieces that
  // together cover dtype size x elements, each a multiple of the element size.
  std::function<void(size_t offset, std::span<std::byte> out)> fill;
};

// Throws Error naming the file when it cannot be written.
void write_safetensors(const std::filesystem::path& file, std::span<const TensorToWrite> tensors);

}  // namespace shardlm
