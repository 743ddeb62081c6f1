// Scalar widening of stored weights; used by element-wise kernels and tests, not by the GEMMs.
#include "core/weight_view.h"

#include <cstring>

namespace shardlm {

float WeightView::at(int64_t index) const {
  switch (dtype) {
    case DType::F32: return static_cast<const float*>(data)[index];
    case DType::F16: return f16_to_f32(static_cast<const uint16_t*>(data)[index]);
    case DType::BF16: return bf16_to_f32(static_cast<const uint16_t*>(data)[index]);
  }
  return 0.0f;
}

void WeightView::row_to_f32(int64_t row, int64_t col, int64_t count, float* out) const {
  const int64_t start = row * stride() + col;
  switch (dtype) {
    case DType::F32:
      std::memcpy(out, static_cast<const float*>(data) + start, size_t(count) * sizeof(float));
      return;
    case DType::F16: {
      const uint16_t* source = static_cast<const uint16_t*>(data) + start;
      for (int64_t i = 0; i < count; ++i) out[i] = f16_to_f32(source[i]);
      return;
    }
    case DType::BF16: {
      const uint16_t* source = static_cast<const uint16_t*>(data) + start;
      for (int64_t i = 0; i < count; ++i) out[i] = bf16_to_f32(source[i]);
      return;
    }
  }
}

}  // namespace shardlm
