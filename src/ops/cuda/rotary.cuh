// The rotary embedding of one pair of a q or k head: elements i and i + head_dim/2, as
// transformers' rotate_half pairs them. Shared by the kernels that rotate (qkv_rope and the q/k/v
// GEMV's epilogue), so that both round alike.
#pragma once

#include <cuda_runtime.h>

namespace shardlm::cuda {

struct RotatedPair {
  float first, second;
};

__device__ __forceinline__ RotatedPair rotate_pair(float first, float second, int position, float inv_freq,
                                                   float attention_scaling) {
  // The angle is rounded to f32 before cos/sin, as torch computes position · inv_freq in f32.
  float sin_value, cos_value;
  sincosf(float(position) * inv_freq, &sin_value, &cos_value);
  cos_value *= attention_scaling;
  sin_value *= attention_scaling;
  return {first * cos_value - second * sin_value, second * cos_value + first * sin_value};
}

}  // namespace shardlm::cuda
