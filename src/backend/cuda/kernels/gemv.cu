// One warp per output column n: lanes read W's row with 16-byte streaming loads, four in flight
// per lane before any arithmetic, and multiply each against every activation row (the activations
// are small and stay in L1). A warp reduction finishes each dot product.
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/kernels/common.cuh"
#include "backend/cuda/kernels/gemv.h"
#include "backend/cuda/kernels/pdl.cuh"

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

// With kSwiGluPairs the weight has 2n rows [gate; up] and output column j is
// silu(x·gate_j) · (x·up_j): the warp computes both dot products, so the gate/up projection and
// SwiGLU are one kernel in decode and the activation is computed once per element.
template <int M, bool kF32Out, bool kSwiGluPairs>
__global__ void __launch_bounds__(kGemvThreads) gemv_kernel(const __nv_bfloat16* x, const __nv_bfloat16* w, int n,
                                                            int k, void* y) {
  constexpr int kRowsPerColumn = kSwiGluPairs ? 2 : 1;
  constexpr int kLoads = kLoadsInFlight / kRowsPerColumn;
  const int column = (blockIdx.x * kGemvThreads + threadIdx.x) / 32;
  const int lane = threadIdx.x % 32;
  const int k8 = k / 8;
  // Weights are never written by a predecessor: fetching this warp's first weight vectors into L2
  // before waiting lets them overlap the previous kernel's tail.
  if (column < n)
#pragma unroll
    for (int r = 0; r < kRowsPerColumn; ++r)
#pragma unroll
      for (int j = 0; j < kLoads; ++j)
        if (lane + 32 * j < k8)
          asm volatile("prefetch.global.L2 [%0];" ::"l"(w + (int64_t(r) * n + column) * k + (lane + 32 * j) * 8));
  wait_for_predecessor();
  if (column >= n) return;
  const uint4* w_rows[kRowsPerColumn];
#pragma unroll
  for (int r = 0; r < kRowsPerColumn; ++r) w_rows[r] = reinterpret_cast<const uint4*>(w + (int64_t(r) * n + column) * k);
  const uint4* x_rows = reinterpret_cast<const uint4*>(x);
  float acc[kRowsPerColumn][M] = {};
  int i = lane;
  for (; i + 32 * (kLoads - 1) < k8; i += 32 * kLoads) {
    uint4 w_values[kRowsPerColumn][kLoads];
#pragma unroll
    for (int r = 0; r < kRowsPerColumn; ++r)
#pragma unroll
      for (int j = 0; j < kLoads; ++j) w_values[r][j] = __ldcs(w_rows[r] + i + 32 * j);
#pragma unroll
    for (int j = 0; j < kLoads; ++j)
#pragma unroll
      for (int m = 0; m < M; ++m) {
        const uint4 x_value = x_rows[m * k8 + i + 32 * j];
#pragma unroll
        for (int r = 0; r < kRowsPerColumn; ++r) acc[r][m] += dot8(w_values[r][j], x_value);
      }
  }
  for (; i < k8; i += 32) {
#pragma unroll
    for (int m = 0; m < M; ++m) {
      const uint4 x_value = x_rows[m * k8 + i];
#pragma unroll
      for (int r = 0; r < kRowsPerColumn; ++r) acc[r][m] += dot8(__ldcs(w_rows[r] + i), x_value);
    }
  }
  // Dependents may start launching only now, so their blocks do not take slots from this grid's
  // later waves.
  allow_successor();
#pragma unroll
  for (int m = 0; m < M; ++m) {
    float result = warp_sum(acc[0][m]);
    if constexpr (kSwiGluPairs) result = result / (1.0f + __expf(-result)) * warp_sum(acc[kRowsPerColumn - 1][m]);
    if (lane == 0) {
      if constexpr (kF32Out) static_cast<float*>(y)[int64_t(m) * n + column] = result;
      else static_cast<__nv_bfloat16*>(y)[int64_t(m) * n + column] = __float2bfloat16(result);
    }
  }
}

template <int M>
void launch_gemv_rows(const __nv_bfloat16* x, const __nv_bfloat16* w, int n, int k, void* y, GemvOutput output,
                      cudaStream_t stream) {
  const int blocks = int((int64_t(n) * 32 + kGemvThreads - 1) / kGemvThreads);
  switch (output) {
    case GemvOutput::BF16: launch_pdl(gemv_kernel<M, false, false>, blocks, kGemvThreads, 0, stream, x, w, n, k, y); break;
    case GemvOutput::F32: launch_pdl(gemv_kernel<M, true, false>, blocks, kGemvThreads, 0, stream, x, w, n, k, y); break;
    case GemvOutput::SWIGLU_BF16:
      launch_pdl(gemv_kernel<M, false, true>, blocks, kGemvThreads, 0, stream, x, w, n, k, y);
      break;
  }
}

// ---------------------------------------------------------------------------------------------
// launchers

bool gemv_supports(int64_t m, int64_t k, const void* x, const void* w) {
  return m >= 1 && m <= kGemvMaxRows && k % 8 == 0 && reinterpret_cast<uintptr_t>(x) % 16 == 0 &&
         reinterpret_cast<uintptr_t>(w) % 16 == 0;
}

void launch_gemv(const __nv_bfloat16* x, int64_t m, const __nv_bfloat16* w, int64_t n, int64_t k, void* y,
                 GemvOutput output, cudaStream_t stream) {
  if (!gemv_supports(m, k, x, w)) throw_unsupported("GEMV shape (m > 8, k not a multiple of 8, or unaligned)", m);
  switch (m) {
    case 1: launch_gemv_rows<1>(x, w, int(n), int(k), y, output, stream); break;
    case 2: launch_gemv_rows<2>(x, w, int(n), int(k), y, output, stream); break;
    case 3: launch_gemv_rows<3>(x, w, int(n), int(k), y, output, stream); break;
    case 4: launch_gemv_rows<4>(x, w, int(n), int(k), y, output, stream); break;
    case 5: launch_gemv_rows<5>(x, w, int(n), int(k), y, output, stream); break;
    case 6: launch_gemv_rows<6>(x, w, int(n), int(k), y, output, stream); break;
    case 7: launch_gemv_rows<7>(x, w, int(n), int(k), y, output, stream); break;
    default: launch_gemv_rows<8>(x, w, int(n), int(k), y, output, stream); break;
  }
  CUDA_CHECK_LAUNCH();
}

}  // namespace shardlm::cuda
