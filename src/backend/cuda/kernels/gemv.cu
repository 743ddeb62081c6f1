// One warp (or, for narrow matrices, four) per output column: lanes read W's row with 16-byte streaming loads, four in flight per
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

// kSplit warps share one output column, each taking a contiguous part of k, so that small
// matrices (q/k/v, o_proj: few columns, short rows) still put enough loads in flight; the parts'
// partial sums meet in shared memory.
template <int M, GemvOutput kOutput, bool kNormedInput, int kSplit>
__global__ void __launch_bounds__(kGemvThreads) gemv_kernel(GemvParams p) {
  constexpr int kRowsPerColumn = kOutput == GemvOutput::SWIGLU_BF16 ? 2 : 1;
  constexpr int kLoads = kLoadsInFlight / kRowsPerColumn;
  constexpr int kWarps = kGemvThreads / 32;
  constexpr int kColumnsPerBlock = kWarps / kSplit;
  const int n = int(p.n), k = int(p.k);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int part = warp % kSplit;
  const int column = blockIdx.x * kColumnsPerBlock + warp / kSplit;
  const bool active = column < n;
  const int k8 = k / 8;
  const int part_length = (k8 + kSplit - 1) / kSplit;
  const int begin = part * part_length, end = min(k8, begin + part_length);
  // Weights are never written by a predecessor: fetching this warp's first weight vectors into L2
  // before waiting lets them overlap the previous kernel's tail.
  if (active)
#pragma unroll
    for (int r = 0; r < kRowsPerColumn; ++r)
#pragma unroll
      for (int j = 0; j < kLoads; ++j)
        if (begin + lane + 32 * j < end)
          asm volatile("prefetch.global.L2 [%0];" ::"l"(p.w + (int64_t(r) * n + column) * k + (begin + lane + 32 * j) * 8));
  wait_for_predecessor();

  float acc[kRowsPerColumn][M] = {};
  float sum_squares[M] = {};
  if (active) {
    const uint4* w_rows[kRowsPerColumn];
#pragma unroll
    for (int r = 0; r < kRowsPerColumn; ++r)
      w_rows[r] = reinterpret_cast<const uint4*>(p.w + (int64_t(r) * n + column) * k);
    const size_t x_row_bytes = size_t(k) * (kNormedInput ? sizeof(float) : sizeof(__nv_bfloat16));
    const char* x_bytes = static_cast<const char*>(p.x);
    int i = begin + lane;
    for (; i + 32 * (kLoads - 1) < end; i += 32 * kLoads) {
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
    for (; i < end; i += 32) {
#pragma unroll
      for (int m = 0; m < M; ++m) {
        if (m >= p.m) break;
        float x_values[8];
        load_activation8<kNormedInput>(x_bytes + m * x_row_bytes, p.norm_weight, i, x_values, sum_squares[m]);
#pragma unroll
        for (int r = 0; r < kRowsPerColumn; ++r) acc[r][m] += dot8(__ldcs(w_rows[r] + i), x_values);
      }
    }
  }
  // Dependents may start launching only now, so their blocks do not take slots from this grid's
  // later waves.
  allow_successor();
#pragma unroll
  for (int m = 0; m < M; ++m) {
    sum_squares[m] = warp_sum(sum_squares[m]);
#pragma unroll
    for (int r = 0; r < kRowsPerColumn; ++r) acc[r][m] = warp_sum(acc[r][m]);
  }
  if constexpr (kSplit > 1) {
    __shared__ float partial_acc[kWarps][kRowsPerColumn][M];
    __shared__ float partial_squares[kWarps][M];
    if (lane == 0)
#pragma unroll
      for (int m = 0; m < M; ++m) {
        partial_squares[warp][m] = sum_squares[m];
#pragma unroll
        for (int r = 0; r < kRowsPerColumn; ++r) partial_acc[warp][r][m] = acc[r][m];
      }
    __syncthreads();
    if (part != 0) return;
#pragma unroll
    for (int m = 0; m < M; ++m)
#pragma unroll
      for (int other = 1; other < kSplit; ++other) {
        sum_squares[m] += partial_squares[warp + other][m];
#pragma unroll
        for (int r = 0; r < kRowsPerColumn; ++r) acc[r][m] += partial_acc[warp + other][r][m];
      }
  }
  if (!active || lane != 0) return;
#pragma unroll
  for (int m = 0; m < M; ++m) {
    if (m >= p.m) break;
    const float scale = kNormedInput ? rsqrtf(sum_squares[m] / float(k) + p.eps) : 1.0f;
    float result = acc[0][m] * scale;
    if constexpr (kOutput == GemvOutput::SWIGLU_BF16)
      result = result / (1.0f + __expf(-result)) * (acc[kRowsPerColumn - 1][m] * scale);
    const int64_t at = int64_t(m) * n + column;
    if constexpr (kOutput == GemvOutput::F32) static_cast<float*>(p.y)[at] = result;
    else if constexpr (kOutput == GemvOutput::ADD_TO_F32) static_cast<float*>(p.y)[at] += result;
    else static_cast<__nv_bfloat16*>(p.y)[at] = __float2bfloat16(result);
  }
}

// Matrices with few columns split each row over 4 warps; wide ones (gate/up, the LM head) have
// columns enough.
constexpr int64_t kColumnsWithoutSplit = 8192;

template <int M, GemvOutput kOutput, bool kNormedInput>
void launch_gemv_kernel(const GemvParams& p, cudaStream_t stream) {
  constexpr int kWarps = kGemvThreads / 32;
  if (p.n < kColumnsWithoutSplit) {
    constexpr int kSplit = 4;
    const int blocks = int((p.n + kWarps / kSplit - 1) / (kWarps / kSplit));
    launch_pdl(gemv_kernel<M, kOutput, kNormedInput, kSplit>, blocks, kGemvThreads, 0, stream, p);
  } else {
    const int blocks = int((p.n + kWarps - 1) / kWarps);
    launch_pdl(gemv_kernel<M, kOutput, kNormedInput, 1>, blocks, kGemvThreads, 0, stream, p);
  }
}

// The combinations the model uses: a normalised input feeds a projection (bf16, SwiGLU pair or the
// f32 logits); a plain input may also add into the residual. M is the row bound, rounded up to 1,
// 2, 4 or 8 so that few variants are compiled.
template <int M>
void launch_gemv_rows(const GemvParams& p, cudaStream_t stream) {
  const bool normed = p.norm_weight != nullptr;
  switch (p.output) {
    case GemvOutput::BF16:
      if (normed) launch_gemv_kernel<M, GemvOutput::BF16, true>(p, stream);
      else launch_gemv_kernel<M, GemvOutput::BF16, false>(p, stream);
      break;
    case GemvOutput::F32:
      if (normed) launch_gemv_kernel<M, GemvOutput::F32, true>(p, stream);
      else launch_gemv_kernel<M, GemvOutput::F32, false>(p, stream);
      break;
    case GemvOutput::SWIGLU_BF16:
      if (normed) launch_gemv_kernel<M, GemvOutput::SWIGLU_BF16, true>(p, stream);
      else launch_gemv_kernel<M, GemvOutput::SWIGLU_BF16, false>(p, stream);
      break;
    case GemvOutput::ADD_TO_F32:
      if (normed) throw_unsupported("GEMV with a normalised input adding into the residual", p.m);
      launch_gemv_kernel<M, GemvOutput::ADD_TO_F32, false>(p, stream);
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
  if (!gemv_supports(p.m, p.k, p.x, p.w)) throw_unsupported("GEMV shape (m > 8, k not a multiple of 8, or unaligned)", p.m);
  if (p.m == 1) launch_gemv_rows<1>(p, stream);
  else if (p.m == 2) launch_gemv_rows<2>(p, stream);
  else if (p.m <= 4) launch_gemv_rows<4>(p, stream);
  else launch_gemv_rows<8>(p, stream);
  CUDA_CHECK_LAUNCH();
}

}  // namespace shardlm::cuda
