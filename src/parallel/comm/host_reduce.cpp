// Scalar loops: the compiler vectorises the f32 ones, and host collectives are for CPU ranks and
// tests, where the bytes moved cost more than the adds.
#include "parallel/comm/host_reduce.h"

#include <cstdint>
#include <cstring>

namespace shardlm {

void widen_to_f32(DType dtype, const void* source, size_t count, float* destination) {
  if (count == 0) return;  // memcpy must not see the null buffers an empty collective may pass
  switch (dtype) {
    case DType::F32: std::memcpy(destination, source, count * sizeof(float)); return;
    case DType::F16: {
      const uint16_t* bits = static_cast<const uint16_t*>(source);
      for (size_t i = 0; i < count; ++i) destination[i] = f16_to_f32(bits[i]);
      return;
    }
    case DType::BF16: {
      const uint16_t* bits = static_cast<const uint16_t*>(source);
      for (size_t i = 0; i < count; ++i) destination[i] = bf16_to_f32(bits[i]);
      return;
    }
  }
}

void accumulate_f32(DType dtype, const void* source, size_t count, float* sums) {
  switch (dtype) {
    case DType::F32: {
      const float* values = static_cast<const float*>(source);
      for (size_t i = 0; i < count; ++i) sums[i] += values[i];
      return;
    }
    case DType::F16: {
      const uint16_t* bits = static_cast<const uint16_t*>(source);
      for (size_t i = 0; i < count; ++i) sums[i] += f16_to_f32(bits[i]);
      return;
    }
    case DType::BF16: {
      const uint16_t* bits = static_cast<const uint16_t*>(source);
      for (size_t i = 0; i < count; ++i) sums[i] += bf16_to_f32(bits[i]);
      return;
    }
  }
}

void narrow_from_f32(DType dtype, const float* source, size_t count, void* destination) {
  if (count == 0) return;
  switch (dtype) {
    case DType::F32: std::memcpy(destination, source, count * sizeof(float)); return;
    case DType::F16: {
      uint16_t* bits = static_cast<uint16_t*>(destination);
      for (size_t i = 0; i < count; ++i) bits[i] = f32_to_f16(source[i]);
      return;
    }
    case DType::BF16: {
      uint16_t* bits = static_cast<uint16_t*>(destination);
      for (size_t i = 0; i < count; ++i) bits[i] = f32_to_bf16(source[i]);
      return;
    }
  }
}

}  // namespace shardlm
