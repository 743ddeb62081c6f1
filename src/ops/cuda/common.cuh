// Warp and block reductions shared by the kernels.
#pragma once

#include <cuda_bf16.h>

namespace shardlm::cuda {

__device__ __forceinline__ float warp_sum(float value) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) value += __shfl_xor_sync(0xffffffffu, value, offset);
  return value;
}

__device__ __forceinline__ float warp_max(float value) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) value = fmaxf(value, __shfl_xor_sync(0xffffffffu, value, offset));
  return value;
}

// The warp's sums of V values (V a power of two, at most 32), lane L returning the total of value
// (L / (32 / V)): each round sends half the values a lane still holds to its partner and keeps the
// other half, so V - 1 + 5 - log2(V) shuffles where V warp_sums take 5 V.
template <int kHeld, int kOffset, int V>
__device__ __forceinline__ void reduce_scatter_round(float (&values)[V], int lane) {
  if constexpr (kHeld > 1) {
    const bool upper = lane & kOffset;
#pragma unroll
    for (int t = 0; t < kHeld / 2; ++t) {
      const float send = upper ? values[t] : values[t + kHeld / 2];
      const float keep = upper ? values[t + kHeld / 2] : values[t];
      values[t] = keep + __shfl_xor_sync(0xffffffffu, send, kOffset);
    }
    reduce_scatter_round<kHeld / 2, kOffset / 2>(values, lane);
  }
}

template <int V>
__device__ __forceinline__ float warp_reduce_scatter(float (&values)[V], int lane) {
  static_assert(V >= 1 && V <= 32 && (V & (V - 1)) == 0, "V must be a power of two up to 32");
  reduce_scatter_round<V, 16>(values, lane);
  float total = values[0];
#pragma unroll
  for (int offset = 16 / V; offset > 0; offset /= 2) total += __shfl_xor_sync(0xffffffffu, total, offset);
  return total;
}

// Sum over the whole block (blockDim.x a multiple of 32, at most 1024); every thread gets it.
__device__ __forceinline__ float block_sum(float value) {
  __shared__ float partial[32];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  value = warp_sum(value);
  __syncthreads();  // partial may still be read from a previous call
  if (lane == 0) partial[warp] = value;
  __syncthreads();
  const int n_warps = blockDim.x / 32;
  value = lane < n_warps ? partial[lane] : 0.0f;
  return warp_sum(value);
}

}  // namespace shardlm::cuda
