// Test support: a copy of a checkpoint directory whose f32 weights are rounded to the nearest bf16
// (still stored as F32), i.e. the weights the CUDA model computes with. The CPU model over the copy
// is the GPU's reference on the very same weights: a mixture-of-experts router may pick another
// expert once its f32 weights are rounded, which changes a row's output far beyond bf16 tolerance
// without either backend being wrong.
#pragma once

#include <cstring>
#include <filesystem>
#include <fstream>
#include <vector>

#include "../unit/scratch_dir.h"
#include "core/dtype.h"
#include "io/safetensors.h"

namespace shardlm::test {

// The copy lives in a scratch directory until the test process ends.
inline std::filesystem::path bf16_rounded_copy(const std::filesystem::path& dir) {
  namespace fs = std::filesystem;
  const fs::path copy = scratch_dir("bf16-rounded-" + dir.filename().string());
  fs::copy(dir, copy);
  for (const fs::directory_entry& entry : fs::directory_iterator(copy)) {
    if (entry.path().extension() != ".safetensors") continue;
    std::vector<std::byte> bytes(entry.file_size());
    std::ifstream(entry.path(), std::ios::binary).read(reinterpret_cast<char*>(bytes.data()), std::streamsize(bytes.size()));
    for (const TensorInfo& tensor : parse_safetensors(bytes, entry.path().string())) {
      if (tensor.dtype != DType::F32) continue;
      std::byte* at = bytes.data() + (tensor.data - bytes.data());
      for (size_t i = 0; i < tensor.n_bytes; i += sizeof(float)) {
        float value;
        std::memcpy(&value, at + i, sizeof(float));
        value = bf16_to_f32(f32_to_bf16(value));
        std::memcpy(at + i, &value, sizeof(float));
      }
    }
    std::ofstream(entry.path(), std::ios::binary | std::ios::trunc)
        .write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
  }
  return copy;
}

}  // namespace shardlm::test
