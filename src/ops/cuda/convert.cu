// Element-wise conversion and random fill, grid-stride loops.
#include <cuda_fp16.h>

#include "core/cuda/cuda_check.h"
#include "ops/cuda/convert.h"

namespace shardlm::cuda {

// ---------------------------------------------------------------------------------------------
// kernels

__global__ void convert_to_bf16_kernel(const void* src, SourceDtype dtype, int64_t n, __nv_bfloat16* dst) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    float value;
    if (dtype == SourceDtype::F32) value = static_cast<const float*>(src)[i];
    else if (dtype == SourceDtype::F16) value = __half2float(static_cast<const __half*>(src)[i]);
    else {
      dst[i] = static_cast<const __nv_bfloat16*>(src)[i];
      continue;
    }
    dst[i] = __float2bfloat16(value);
  }
}

__device__ uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

__global__ void fill_normal_kernel(__nv_bfloat16* dst, int64_t n, uint64_t seed, float mean, float stddev) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const uint64_t bits = mix64(seed * 0x9e3779b97f4a7c15ull + uint64_t(i));
    // Box-Muller from two 24-bit uniforms in (0, 1).
    const float u1 = (float(bits >> 40) + 0.5f) / 16777216.0f;
    const float u2 = (float((bits >> 8) & 0xffffffu) + 0.5f) / 16777216.0f;
    const float normal = sqrtf(-2.0f * __logf(u1)) * __cosf(6.2831853f * u2);
    dst[i] = __float2bfloat16(mean + stddev * normal);
  }
}

// ---------------------------------------------------------------------------------------------
// launchers

void launch_convert_to_bf16(const void* src, SourceDtype dtype, int64_t n, __nv_bfloat16* dst, cudaStream_t stream) {
  if (n == 0) return;
  convert_to_bf16_kernel<<<1024, 256, 0, stream>>>(src, dtype, n, dst);
  CUDA_CHECK_LAUNCH();
}

void launch_fill_normal_bf16(__nv_bfloat16* dst, int64_t n, uint64_t seed, float mean, float stddev, cudaStream_t stream) {
  if (n == 0) return;
  fill_normal_kernel<<<2048, 256, 0, stream>>>(dst, n, seed, mean, stddev);
  CUDA_CHECK_LAUNCH();
}

}  // namespace shardlm::cuda
