// A read-only view of a stored weight: its dtype, shape and bytes (usually inside a mapped
// safetensors file). Kernels take views so weights never get copied or widened up front.
#pragma once

#include <cstdint>

#include "core/dtype.h"

namespace shardlm {

struct WeightView {
  DType dtype = DType::F32;
  const void* data = nullptr;  // nullptr: the weight is absent (an optional bias or norm)
  int64_t rows = 0;            // out_features for a linear weight (HF [out, in] orientation)
  int64_t cols = 0;            // in_features; 1-D weights have rows == 1
  // Elements from one row's start to the next: cols for a whole tensor, more for a tensor-parallel
  // column slice (a rowwise shard) read in place from the checkpoint.
  int64_t row_stride = 0;

  bool present() const { return data != nullptr; }
  int64_t numel() const { return rows * cols; }
  int64_t stride() const { return row_stride > 0 ? row_stride : cols; }
  // Widens element `index` of a 1-D weight (or of row 0) to f32; slow path for small vectors.
  float at(int64_t index) const;
  // Widens `count` elements of row `row`, starting at column `col`, into `out`.
  void row_to_f32(int64_t row, int64_t col, int64_t count, float* out) const;
};

}  // namespace shardlm
