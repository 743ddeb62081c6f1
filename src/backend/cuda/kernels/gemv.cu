// One warp per output column: lanes read W's row with 16-byte streaming loads, four in flight per
// lane before any arithmetic, and multiply each against every activation row (the activations are
// small and stay in L1). Warp reductions finish each dot product. Variants, all chosen at compile
// time: SwiGLU pairs (the warp computes a gate and an up column together), an RMS-normalised f32
// input (the warp also sums the squares of the row it reads anyway, then scales the dot product),
// and an epilogue that adds into the f32 residual stream.
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/kernels/common.cuh"
#include "backend/cuda/kernels/gemv.h"
#include "backend/cuda/kernels/pdl.cuh"

namespace shardlm::cuda {

// ---------------------------------------------------------------------------------------------
// kernels

constexpr int kGemvThreads = 256;
constexpr int kLoadsInFlight = 4;

// 8 activation values at vector index `index` of a row: bf16, or f32 times the norm weight.
template <bool kNormedInput>
__device__ __forceinline__ void load_activation8(const void* row, const __nv_bfloat16* norm_weight, int index,
                                                 float out[8], float& sum_squares) {
  if constexpr (!kNormedInput) {
    const uint4 packed = reinterpret_cast<const uint4*>(row)[index];
    const __nv_bfloat162* pairs = reinterpret_cast<const __nv_bfloat162*>(&packed);
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const float2 values = __bfloat1622float2(pairs[i]);
      out[2 * i] = values.x;
      out[2 * i + 1] = values.y;
    }
  } else {
    const float4 low = reinterpret_cast<const float4*>(row)[2 * index];
    const float4 high = reinterpret_cast<const float4*>(row)[2 * index + 1];
    const uint4 packed = reinterpret_cast<const uint4*>(norm_weight)[index];
    const __nv_bfloat162* gamma = reinterpret_cast<const __nv_bfloat162*>(&packed);
    const float raw[8] = {low.x, low.y, low.z, low.w, high.x, high.y, high.z, high.w};
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const float2 g = __bfloat1622float2(gamma[i]);
      out[2 * i] = raw[2 * i] * g.x;
      out[2 * i + 1] = raw[2 * i + 1] * g.y;
    }
#pragma unroll
    for (int i = 0; i < 8; ++i) sum_squares = fmaf(raw[i], raw[i], sum_squares);
  }
}

__device__ __forceinline__ float dot8(const uint4& w, const float x[8]) {
  const __nv_bfloat162* w2 = reinterpret_cast<const __nv_bfloat162*>(&w);
  float sum = 0.0f;
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 wf = __bfloat1622float2(w2[i]);
    sum = fmaf(wf.x, x[2 * i], sum);
    sum = fmaf(wf.y, x[2 * i + 1], sum);
  }
  return sum;
}

template <int M, GemvOutput kOutput, bool kNormedInput>
__global__ void __launch_bounds__(kGemvThreads) gemv_kernel(GemvParams p) {
  constexpr int kRowsPerColumn = kOutput == GemvOutput::SWIGLU_BF16 ? 2 : 1;
  constexpr int kLoads = kLoadsInFlight / kRowsPerColumn;
  const int n = int(p.n), k = int(p.k);
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
          asm volatile("prefetch.global.L2 [%0];" ::"l"(p.w + (int64_t(r) * n + column) * k + (lane + 32 * j) * 8));
  wait_for_predecessor();
  if (column >= n) return;

  const uint4* w_rows[kRowsPerColumn];
#pragma unroll
  for (int r = 0; r < kRowsPerColumn; ++r) w_rows[r] = reinterpret_cast<const uint4*>(p.w + (int64_t(r) * n + column) * k);
  const size_t x_row_bytes = size_t(k) * (kNormedInput ? sizeof(float) : sizeof(__nv_bfloat16));
  const char* x_bytes = static_cast<const char*>(p.x);
  float acc[kRowsPerColumn][M] = {};
  float sum_squares[M] = {};
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
        if (m >= p.m) break;
        float x_values[8];
        load_activation8<kNormedInput>(x_bytes + m * x_row_bytes, p.norm_weight, i + 32 * j, x_values, sum_squares[m]);
#pragma unroll
        for (int r = 0; r < kRowsPerColumn; ++r) acc[r][m] += dot8(w_values[r][j], x_values);
      }
  }
  for (; i < k8; i += 32) {
#pragma unroll
    for (int m = 0; m < M; ++m) {
      if (m >= p.m) break;
      float x_values[8];
      load_activation8<kNormedInput>(x_bytes + m * x_row_bytes, p.norm_weight, i, x_values, sum_squares[m]);
#pragma unroll
      for (int r = 0; r < kRowsPerColumn; ++r) acc[r][m] += dot8(__ldcs(w_rows[r] + i), x_values);
    }
  }
  // Dependents may start launching only now, so their blocks do not take slots from this grid's
  // later waves.
  allow_successor();
#pragma unroll
  for (int m = 0; m < M; ++m) {
    if (m >= p.m) break;
    const float scale = kNormedInput ? rsqrtf(warp_sum(sum_squares[m]) / float(k) + p.eps) : 1.0f;
    float result = warp_sum(acc[0][m]) * scale;
    if constexpr (kOutput == GemvOutput::SWIGLU_BF16)
      result = result / (1.0f + __expf(-result)) * (warp_sum(acc[kRowsPerColumn - 1][m]) * scale);
    if (lane != 0) continue;
    const int64_t at = int64_t(m) * n + column;
    if constexpr (kOutput == GemvOutput::F32) static_cast<float*>(p.y)[at] = result;
    else if constexpr (kOutput == GemvOutput::ADD_TO_F32) static_cast<float*>(p.y)[at] += result;
    else static_cast<__nv_bfloat16*>(p.y)[at] = __float2bfloat16(result);
  }
}

// The combinations the model uses: a normalised input feeds a projection (bf16, SwiGLU pair or the
// f32 logits); a plain input may also add into the residual. M is the row bound, rounded up to 1,
// 2, 4 or 8 so that few variants are compiled.
template <int M>
void launch_gemv_rows(const GemvParams& p, cudaStream_t stream) {
  const int blocks = int((p.n * 32 + kGemvThreads - 1) / kGemvThreads);
  const bool normed = p.norm_weight != nullptr;
  switch (p.output) {
    case GemvOutput::BF16:
      if (normed) launch_pdl(gemv_kernel<M, GemvOutput::BF16, true>, blocks, kGemvThreads, 0, stream, p);
      else launch_pdl(gemv_kernel<M, GemvOutput::BF16, false>, blocks, kGemvThreads, 0, stream, p);
      break;
    case GemvOutput::F32:
      if (normed) launch_pdl(gemv_kernel<M, GemvOutput::F32, true>, blocks, kGemvThreads, 0, stream, p);
      else launch_pdl(gemv_kernel<M, GemvOutput::F32, false>, blocks, kGemvThreads, 0, stream, p);
      break;
    case GemvOutput::SWIGLU_BF16:
      if (normed) launch_pdl(gemv_kernel<M, GemvOutput::SWIGLU_BF16, true>, blocks, kGemvThreads, 0, stream, p);
      else launch_pdl(gemv_kernel<M, GemvOutput::SWIGLU_BF16, false>, blocks, kGemvThreads, 0, stream, p);
      break;
    case GemvOutput::ADD_TO_F32:
      if (normed) throw_unsupported("GEMV with a normalised input adding into the residual", p.m);
      launch_pdl(gemv_kernel<M, GemvOutput::ADD_TO_F32, false>, blocks, kGemvThreads, 0, stream, p);
      break;
  }
}

// ---------------------------------------------------------------------------------------------
// launchers

bool gemv_supports(int64_t m, int64_t k, const void* x, const void* w) {
  return m >= 1 && m <= kGemvMaxRows && k % 8 == 0 && reinterpret_cast<uintptr_t>(x) % 16 == 0 &&
         reinterpret_cast<uintptr_t>(w) % 16 == 0;
}

void launch_gemv(const GemvParams& p, cudaStream_t stream) {
  if (!gemv_supports(p.m, p.k, p.x, p.w)) throw_unsupported("GEMV shape (m > 2, k not a multiple of 8, or unaligned)", p.m);
  if (p.m == 1) launch_gemv_rows<1>(p, stream);
  else launch_gemv_rows<2>(p, stream);
  CUDA_CHECK_LAUNCH();
}

}  // namespace shardlm::cuda
