#include "core/narrow_to_bf16.h"

#include <cstring>

namespace shardlm {

void narrow_to_bf16(const WeightView& view, uint16_t* out) {
  const int64_t cols = view.cols;
  const size_t element_size = dtype_size(view.dtype);
  const auto* base = static_cast<const std::byte*>(view.data);
#pragma omp parallel for schedule(static)
  for (int64_t row = 0; row < view.rows; ++row) {
    const std::byte* source = base + size_t(row * view.stride()) * element_size;
    uint16_t* target = out + row * cols;
    switch (view.dtype) {
      case DType::BF16:
        std::memcpy(target, source, size_t(cols) * 2);
        break;
      case DType::F16:
        for (int64_t i = 0; i < cols; ++i) {
          uint16_t bits;
          std::memcpy(&bits, source + 2 * i, 2);
          target[i] = f32_to_bf16(f16_to_f32(bits));
        }
        break;
      case DType::F32:
        for (int64_t i = 0; i < cols; ++i) {
          float value;
          std::memcpy(&value, source + 4 * i, 4);
          target[i] = f32_to_bf16(value);
        }
        break;
    }
  }
}

}  // namespace shardlm
