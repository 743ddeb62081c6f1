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
