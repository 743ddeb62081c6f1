// One warp per output column n: lanes read W's row with 16-byte streaming loads, four in flight
// per lane before any arithmetic, and multiply each against every activation row (the activations
// are small and stay in L1). A warp reduction finishes each dot product.
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/kernels/common.cuh"
#include "backend/cuda/kernels/gemv.h"

namespace shardlm::cuda {

// ---------------------------------------------------------------------------------------------
// kernels

constexpr int kGemvThreads = 256;
constexpr int kLoadsInFlight = 4;

__device__ __forceinline__ float dot8(const uint4& a, const uint4& b) {
  const __nv_bfloat162* a2 = reinterpret_cast<const __nv_bfloat162*>(&a);
  const __nv_bfloat162* b2 = reinterpret_cast<const __nv_bfloat162*>(&b);
  float sum = 0.0f;
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 af = __bfloat1622float2(a2[i]);
    const float2 bf = __bfloat1622float2(b2[i]);
    sum = fmaf(af.x, bf.x, sum);
    sum = fmaf(af.y, bf.y, sum);
  }
  return sum;
}

template <int M, bool kF32Out>
__global__ void __launch_bounds__(kGemvThreads) gemv_kernel(const __nv_bfloat16* x, const __nv_bfloat16* w, int n,
                                                            int k, void* y) {
  const int column = (blockIdx.x * kGemvThreads + threadIdx.x) / 32;
  const int lane = threadIdx.x % 32;
  if (column >= n) return;
  const uint4* w_row = reinterpret_cast<const uint4*>(w + int64_t(column) * k);
  const uint4* x_rows = reinterpret_cast<const uint4*>(x);
  const int k8 = k / 8;
  float acc[M] = {};
  int i = lane;
  for (; i + 32 * (kLoadsInFlight - 1) < k8; i += 32 * kLoadsInFlight) {
    uint4 w_values[kLoadsInFlight];
#pragma unroll
    for (int j = 0; j < kLoadsInFlight; ++j) w_values[j] = __ldcs(w_row + i + 32 * j);
#pragma unroll
    for (int j = 0; j < kLoadsInFlight; ++j)
#pragma unroll
      for (int m = 0; m < M; ++m) acc[m] += dot8(w_values[j], x_rows[m * k8 + i + 32 * j]);
  }
  for (; i < k8; i += 32) {
    const uint4 w_value = __ldcs(w_row + i);
#pragma unroll
    for (int m = 0; m < M; ++m) acc[m] += dot8(w_value, x_rows[m * k8 + i]);
  }
#pragma unroll
  for (int m = 0; m < M; ++m) {
    const float sum = warp_sum(acc[m]);
    if (lane == 0) {
      if constexpr (kF32Out) static_cast<float*>(y)[int64_t(m) * n + column] = sum;
      else static_cast<__nv_bfloat16*>(y)[int64_t(m) * n + column] = __float2bfloat16(sum);
    }
  }
}

template <int M>
void launch_gemv_rows(const __nv_bfloat16* x, const __nv_bfloat16* w, int n, int k, void* y, bool y_is_f32,
                      cudaStream_t stream) {
  const int blocks = int((int64_t(n) * 32 + kGemvThreads - 1) / kGemvThreads);
  if (y_is_f32) gemv_kernel<M, true><<<blocks, kGemvThreads, 0, stream>>>(x, w, n, k, y);
  else gemv_kernel<M, false><<<blocks, kGemvThreads, 0, stream>>>(x, w, n, k, y);
}

// ---------------------------------------------------------------------------------------------
// launchers

bool gemv_supports(int64_t m, int64_t k, const void* x, const void* w) {
  return m >= 1 && m <= kGemvMaxRows && k % 8 == 0 && reinterpret_cast<uintptr_t>(x) % 16 == 0 &&
         reinterpret_cast<uintptr_t>(w) % 16 == 0;
}

void launch_gemv(const __nv_bfloat16* x, int64_t m, const __nv_bfloat16* w, int64_t n, int64_t k, void* y,
                 bool y_is_f32, cudaStream_t stream) {
  if (!gemv_supports(m, k, x, w)) throw_unsupported("GEMV shape (m > 8, k not a multiple of 8, or unaligned)", m);
  switch (m) {
    case 1: launch_gemv_rows<1>(x, w, int(n), int(k), y, y_is_f32, stream); break;
    case 2: launch_gemv_rows<2>(x, w, int(n), int(k), y, y_is_f32, stream); break;
    case 3: launch_gemv_rows<3>(x, w, int(n), int(k), y, y_is_f32, stream); break;
    case 4: launch_gemv_rows<4>(x, w, int(n), int(k), y, y_is_f32, stream); break;
    case 5: launch_gemv_rows<5>(x, w, int(n), int(k), y, y_is_f32, stream); break;
    case 6: launch_gemv_rows<6>(x, w, int(n), int(k), y, y_is_f32, stream); break;
    case 7: launch_gemv_rows<7>(x, w, int(n), int(k), y, y_is_f32, stream); break;
    default: launch_gemv_rows<8>(x, w, int(n), int(k), y, y_is_f32, stream); break;
  }
  CUDA_CHECK_LAUNCH();
}

}  // namespace shardlm::cuda
