// One warp per output column: lanes read W's row with 16-byte streaming loads, four in flight per
// lane before any arithmetic, and multiply each against every activation row. The block first
// stages its activation rows in shared memory as bf16, RMS-normalised when the input is the f32
// residual (Transformers also rounds the normalised row to bf16 before the projection), so the
// warps' inner loop is loads and FMAs only. Each warp issues its first weight loads before waiting
// for the previous kernel (weights are never written by a predecessor), which hides the staging and
// the launch behind the predecessor's tail: on an H200, a Llama-3-8B layer's four GEMVs in a CUDA
// graph took 113.6 us this way against 119.1 us reading the activations from global memory.
// Variants, all chosen at compile time: SwiGLU pairs (the warp computes a gate and an up column
// together), rotary pairs (the warp computes columns i and i + head_dim/2 of a q/k/v head, rotates
// them and stores them where attention reads them), a normalised input, and an epilogue that adds
// into the f32 residual stream. A one-row GEMV that follows a kernel which leaves memory idle may
// instead hold all of W in shared memory (GemvParams::weights_in_shared): on an H100, Qwen3-30B-A3B
// at batch 1 took 3.47 ms a token without, 3.38 with the o projection's and the router's held so.
// (The q/k/v projection's lost: its predecessor, the experts' down kernel, keeps memory busy.)
#include <unordered_map>

#include "core/alignment.h"
#include "core/cuda/cuda_check.h"
#include "ops/cuda/common.cuh"
#include "ops/cuda/cp_async.cuh"
#include "ops/cuda/gemv.h"
#include "ops/cuda/pdl.cuh"
#include "ops/cuda/rotary.cuh"

namespace shardlm::cuda {

// ---------------------------------------------------------------------------------------------
// kernels

constexpr int kGemvThreads = 256;
constexpr int kLoadsInFlight = 4;
constexpr int kDefaultSharedBytes = 48 * 1024;

__device__ __forceinline__ float dot8(const uint4& w, const uint4& x) {
  const __nv_bfloat162* w2 = reinterpret_cast<const __nv_bfloat162*>(&w);
  const __nv_bfloat162* x2 = reinterpret_cast<const __nv_bfloat162*>(&x);
  float sum = 0.0f;
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 wf = __bfloat1622float2(w2[i]);
    const float2 xf = __bfloat1622float2(x2[i]);
    sum = fmaf(wf.x, xf.x, sum);
    sum = fmaf(wf.y, xf.y, sum);
  }
  return sum;
}

// The block's M activation rows into shared memory as bf16 (m, k): copied, or RMS-normalised from
// the f32 residual and scaled by the norm weight.
template <int M, bool kNormedInput>
__device__ __forceinline__ void stage_activations(const GemvParams& p, uint4* staged) {
  const int k = int(p.k), k8 = k / 8;
#pragma unroll
  for (int m = 0; m < M; ++m) {
    if constexpr (!kNormedInput) {
      const uint4* row = static_cast<const uint4*>(p.x) + int64_t(m) * k8;
      for (int i = threadIdx.x; i < k8; i += kGemvThreads) staged[m * k8 + i] = row[i];
    } else {
      const float4* row = static_cast<const float4*>(p.x) + int64_t(m) * (k / 4);
      float sum_squares = 0.0f;
      for (int i = threadIdx.x; i < k / 4; i += kGemvThreads) {
        const float4 v = row[i];
        sum_squares += v.x * v.x + v.y * v.y + v.z * v.z + v.w * v.w;
      }
      const float scale = rsqrtf(block_sum(sum_squares) / float(k) + p.eps);
      for (int i = threadIdx.x; i < k8; i += kGemvThreads) {
        const float4 low = row[2 * i], high = row[2 * i + 1];
        const uint4 gamma_packed = reinterpret_cast<const uint4*>(p.norm_weight)[i];
        const __nv_bfloat162* gamma = reinterpret_cast<const __nv_bfloat162*>(&gamma_packed);
        const float raw[8] = {low.x, low.y, low.z, low.w, high.x, high.y, high.z, high.w};
        uint4 packed;
        __nv_bfloat162* out = reinterpret_cast<__nv_bfloat162*>(&packed);
#pragma unroll
        for (int j = 0; j < 4; ++j) {
          const float2 g = __bfloat1622float2(gamma[j]);
          out[j] = __floats2bfloat162_rn(raw[2 * j] * scale * g.x, raw[2 * j + 1] * scale * g.y);
        }
        staged[m * k8 + i] = packed;
        if (p.normed_out && blockIdx.x == 0) reinterpret_cast<uint4*>(p.normed_out)[m * k8 + i] = packed;
      }
    }
  }
  __syncthreads();
}

template <int kRows>
__device__ __forceinline__ void load_weights(uint4 (&values)[kRows][kLoadsInFlight / kRows],
                                             const uint4* const (&rows)[kRows], int index, int k8) {
#pragma unroll
  for (int r = 0; r < kRows; ++r)
#pragma unroll
    for (int j = 0; j < kLoadsInFlight / kRows; ++j)
      if (index + 32 * j < k8) values[r][j] = __ldcs(rows[r] + index + 32 * j);
}

// Bias, rotation and store of one rotary pair (first = column c, second = column c + half of a
// q/k/v head) of activation row m; v heads are stored as they are.
__device__ __forceinline__ void store_rotated_pair(const QkvRopeParams& r, int m, int head, int i, float first,
                                                   float second) {
  const int half = r.head_dim / 2;
  const int column = head * r.head_dim + i;
  if (r.bias) {
    first += __bfloat162float(r.bias[column]);
    second += __bfloat162float(r.bias[column + half]);
  }
  const int kv_dim = r.n_kv_heads * r.head_dim;
  const int position = r.positions[m];
  const int64_t cache_row = r.kv.row(r.slots[m], position) * kv_dim;
  __nv_bfloat16* destination;
  if (head < r.n_heads + r.n_kv_heads) {
    const RotatedPair rotated = rotate_pair(first, second, position, r.inv_freq[i], r.attention_scaling);
    first = rotated.first;
    second = rotated.second;
    destination = head < r.n_heads ? r.q_out + int64_t(m) * r.n_heads * r.head_dim + column
                                   : r.k_cache + cache_row + (head - r.n_heads) * r.head_dim + i;
  } else {
    destination = r.v_cache + cache_row + (head - r.n_heads - r.n_kv_heads) * r.head_dim + i;
  }
  destination[0] = __float2bfloat16(first);
  destination[half] = __float2bfloat16(second);
}

// Output element `at` of y (the SwiGLU output is bf16 like BF16's).
template <GemvOutput kOutput>
__device__ __forceinline__ void store_output(const GemvParams& p, int64_t at, float value) {
  if constexpr (kOutput == GemvOutput::F32) static_cast<float*>(p.y)[at] = value;
  else if constexpr (kOutput == GemvOutput::ADD_TO_F32) static_cast<float*>(p.y)[at] += value;
  else static_cast<__nv_bfloat16*>(p.y)[at] = __float2bfloat16(value);
}

// Warps of a launch: one per output column, or per rotary pair (half of the fused q/k/v width).
__host__ __device__ constexpr int64_t gemv_warps(GemvOutput output, int64_t n) {
  return output == GemvOutput::QKV_ROPE ? n / 2 : n;
}

template <int M, GemvOutput kOutput, bool kNormedInput>
__global__ void __launch_bounds__(kGemvThreads) gemv_kernel(GemvParams p) {
  constexpr bool kPairs = kOutput == GemvOutput::SWIGLU_BF16 || kOutput == GemvOutput::QKV_ROPE;
  constexpr int kRowsPerColumn = kPairs ? 2 : 1;
  constexpr int kLoads = kLoadsInFlight / kRowsPerColumn;
  extern __shared__ uint4 staged_x[];  // (M, k) bf16
  const int k8 = int(p.k) / 8;
  const int warp = (blockIdx.x * kGemvThreads + threadIdx.x) / 32;
  const int lane = threadIdx.x % 32;
  const int half = p.rope.head_dim / 2;
  const bool active = warp < gemv_warps(kOutput, p.n);
  const int head = kOutput == GemvOutput::QKV_ROPE ? warp / half : 0;
  const int column = kOutput == GemvOutput::QKV_ROPE ? head * p.rope.head_dim + warp % half : warp;
  const int64_t pair_offset = kOutput == GemvOutput::QKV_ROPE ? half : p.n;
  const uint4* w_rows[kRowsPerColumn];
#pragma unroll
  for (int r = 0; r < kRowsPerColumn; ++r)
    w_rows[r] = reinterpret_cast<const uint4*>(p.w + (r * pair_offset + (active ? column : 0)) * p.k);

  uint4 w_values[kRowsPerColumn][kLoads];
  if (active) load_weights<kRowsPerColumn>(w_values, w_rows, lane, k8);
  wait_for_predecessor();
  stage_activations<M, kNormedInput>(p, staged_x);
  if (!active) return;

  float acc[kRowsPerColumn][M] = {};
  for (int i = lane;;) {
#pragma unroll
    for (int j = 0; j < kLoads; ++j) {
      if (i + 32 * j >= k8) break;
#pragma unroll
      for (int m = 0; m < M; ++m) {
        const uint4 x = staged_x[m * k8 + i + 32 * j];
#pragma unroll
        for (int r = 0; r < kRowsPerColumn; ++r) acc[r][m] += dot8(w_values[r][j], x);
      }
    }
    i += 32 * kLoads;
    if (i >= k8) break;
    load_weights<kRowsPerColumn>(w_values, w_rows, i, k8);
  }
  // Dependents may start launching only now, so their blocks do not take slots from this grid's
  // later waves.
  allow_successor();
#pragma unroll
  for (int m = 0; m < M; ++m) {
    float result = warp_sum(acc[0][m]);
    if constexpr (kOutput == GemvOutput::QKV_ROPE) {
      const float second = warp_sum(acc[kRowsPerColumn - 1][m]);
      if (lane == 0) store_rotated_pair(p.rope, m, head, warp % half, result, second);
      continue;
    }
    if constexpr (kOutput == GemvOutput::SWIGLU_BF16)
      result = result / (1.0f + __expf(-result)) * warp_sum(acc[kRowsPerColumn - 1][m]);
    if (lane == 0) store_output<kOutput>(p, int64_t(m) * p.n + column, result);
  }
}

// One row, W held in shared memory: block b holds rows [b c, b c + c) of W (c columns_per_block),
// copied with cp.async before the wait, and the activation row after it; each warp then takes
// every eighth of the block's columns. A lane sums the same elements in the same order as
// gemv_kernel's, so both give the same bits.
template <GemvOutput kOutput, bool kNormedInput>
__global__ void __launch_bounds__(kGemvThreads) gemv_shared_weights_kernel(GemvParams p, int columns_per_block) {
  extern __shared__ uint4 shared[];  // (columns_per_block, k) of W, then (1, k) of x, bf16
  const int k8 = int(p.k) / 8;
  const int first = blockIdx.x * columns_per_block;
  const int count = min(columns_per_block, int(p.n) - first);
  uint4* weights = shared;
  uint4* staged_x = shared + columns_per_block * k8;
  const uint4* rows = reinterpret_cast<const uint4*>(p.w) + int64_t(first) * k8;
  for (int i = threadIdx.x; i < count * k8; i += kGemvThreads) cp_async_16(shared_address(weights + i), rows + i, true);
  cp_async_commit();
  wait_for_predecessor();
  // The grid is one wave, so the next kernel's blocks take no slot this grid needs.
  allow_successor();
  stage_activations<1, kNormedInput>(p, staged_x);
  cp_async_wait<0>();
  __syncthreads();
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  for (int c = warp; c < count; c += kGemvThreads / 32) {
    float acc = 0.0f;
    for (int i = lane; i < k8; i += 32) acc += dot8(weights[c * k8 + i], staged_x[i]);
    acc = warp_sum(acc);
    if (lane == 0) store_output<kOutput>(p, first + c, acc);
  }
}

// ---------------------------------------------------------------------------------------------
// launchers

namespace {

size_t staged_bytes(int64_t m, int64_t k) { return size_t(m) * size_t(k) * sizeof(__nv_bfloat16); }

template <int M, GemvOutput kOutput, bool kNormedInput>
void launch_variant(const GemvParams& p, cudaStream_t stream) {
  const auto kernel = gemv_kernel<M, kOutput, kNormedInput>;
  const size_t shared_bytes = staged_bytes(M, p.k);
  if (shared_bytes > kDefaultSharedBytes)
    CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(shared_bytes)));
  const int blocks = int((gemv_warps(kOutput, p.n) * 32 + kGemvThreads - 1) / kGemvThreads);
  launch_pdl(kernel, blocks, kGemvThreads, shared_bytes, stream, p);
}

// The combinations the model uses: a normalised input feeds a projection (bf16, SwiGLU pair or the
// f32 logits); a plain input may also add into the residual.
template <int M>
void launch_gemv_rows(const GemvParams& p, cudaStream_t stream) {
  const bool normed = p.norm_weight != nullptr;
  switch (p.output) {
    case GemvOutput::BF16:
      if (normed) launch_variant<M, GemvOutput::BF16, true>(p, stream);
      else launch_variant<M, GemvOutput::BF16, false>(p, stream);
      break;
    case GemvOutput::F32:
      if (normed) launch_variant<M, GemvOutput::F32, true>(p, stream);
      else launch_variant<M, GemvOutput::F32, false>(p, stream);
      break;
    case GemvOutput::SWIGLU_BF16:
      if (normed) launch_variant<M, GemvOutput::SWIGLU_BF16, true>(p, stream);
      else launch_variant<M, GemvOutput::SWIGLU_BF16, false>(p, stream);
      break;
    case GemvOutput::ADD_TO_F32:
      if (normed) throw_unsupported("GEMV with a normalised input adding into the residual", p.m);
      launch_variant<M, GemvOutput::ADD_TO_F32, false>(p, stream);
      break;
    case GemvOutput::QKV_ROPE:
      if (!normed) throw_unsupported("rotary GEMV without the input norm", p.m);
      if (p.rope.q_norm || p.rope.k_norm) throw_unsupported("rotary GEMV with q/k norms", p.m);
      launch_variant<M, GemvOutput::QKV_ROPE, true>(p, stream);
      break;
  }
}

// Per device, asked once per thread: the multiprocessors, and the shared memory a block holding W
// may take. Blocks of the previous kernel share the multiprocessor while W streams in, so they are
// left kPredecessorShare of its most.
struct SharedWeightsBudget {
  int multiprocessors, bytes_per_block;
};

SharedWeightsBudget shared_weights_budget() {
  constexpr int kPredecessorShare = 32 * 1024;
  thread_local std::unordered_map<int, SharedWeightsBudget> budgets;
  int device = 0;
  CUDA_CHECK(cudaGetDevice(&device));
  const auto found = budgets.find(device);
  if (found != budgets.end()) return found->second;
  SharedWeightsBudget budget{};
  CUDA_CHECK(cudaDeviceGetAttribute(&budget.multiprocessors, cudaDevAttrMultiProcessorCount, device));
  CUDA_CHECK(cudaDeviceGetAttribute(&budget.bytes_per_block, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
  budget.bytes_per_block -= kPredecessorShare;
  return budgets[device] = budget;
}

// A block per multiprocessor: the columns each holds, and its bytes of W and of the activation row.
struct SharedWeightsLayout {
  int columns_per_block;
  int64_t bytes;
};

SharedWeightsLayout shared_weights_layout(const SharedWeightsBudget& budget, int64_t n, int64_t k) {
  const int64_t columns = (n + budget.multiprocessors - 1) / budget.multiprocessors;
  return {int(columns), (columns + 1) * k * int64_t(sizeof(__nv_bfloat16))};
}

// The limit is set to the whole budget, never to one launch's bytes: a graph may hold launches of
// several sizes (layers of different shapes), and a later, smaller setting must not undercut them.
template <GemvOutput kOutput, bool kNormedInput>
void launch_shared_weights_variant(const GemvParams& p, const SharedWeightsBudget& budget, cudaStream_t stream) {
  const auto kernel = gemv_shared_weights_kernel<kOutput, kNormedInput>;
  CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, budget.bytes_per_block));
  const SharedWeightsLayout layout = shared_weights_layout(budget, p.n, p.k);
  const int blocks = int((p.n + layout.columns_per_block - 1) / layout.columns_per_block);
  launch_pdl(kernel, blocks, kGemvThreads, size_t(layout.bytes), stream, p, layout.columns_per_block);
}

}  // namespace

// The combinations the model asks for: the o projection's (added to the residual, or bf16 partial
// sums under tensor parallelism) and the router's (f32 logits of the normalised residual).
bool gemv_holds_weights_in_shared(const GemvParams& p) {
  const bool normed = p.norm_weight != nullptr;
  const bool has_form = (p.output == GemvOutput::ADD_TO_F32 && !normed) || (p.output == GemvOutput::BF16 && !normed) ||
                        (p.output == GemvOutput::F32 && normed);
  if (!p.weights_in_shared || p.m != 1 || !has_form) return false;
  const SharedWeightsBudget budget = shared_weights_budget();
  return shared_weights_layout(budget, p.n, p.k).bytes <= budget.bytes_per_block;
}

bool gemv_supports(int64_t m, int64_t k, const void* x, const void* w) {
  return m >= 1 && m <= kGemvMaxRows && k % 8 == 0 && gemv_stages(m, k) &&
         is_aligned(x, 16) && is_aligned(w, 16);
}

void launch_gemv(const GemvParams& p, cudaStream_t stream) {
  if (!gemv_supports(p.m, p.k, p.x, p.w))
    throw_unsupported("GEMV shape (m > 2, k not a multiple of 8 or too long to stage, or unaligned)", p.m);
  if (gemv_holds_weights_in_shared(p)) {
    const SharedWeightsBudget budget = shared_weights_budget();
    if (p.output == GemvOutput::ADD_TO_F32) launch_shared_weights_variant<GemvOutput::ADD_TO_F32, false>(p, budget, stream);
    else if (p.output == GemvOutput::BF16) launch_shared_weights_variant<GemvOutput::BF16, false>(p, budget, stream);
    else launch_shared_weights_variant<GemvOutput::F32, true>(p, budget, stream);
    CUDA_CHECK_LAUNCH();
    return;
  }
  if (p.m == 1) launch_gemv_rows<1>(p, stream);
  else launch_gemv_rows<2>(p, stream);
  CUDA_CHECK_LAUNCH();
}

}  // namespace shardlm::cuda
