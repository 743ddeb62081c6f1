// A warp computes one output feature of one chosen expert for up to kExpertPairsPerPass pairs at a time:
// it streams that feature's weight row once per pass and dots it with each pair's input row. One
// row's decode step (every chosen expert has one pair) reads few bytes per warp, so latency bounds a
// warp that waits on each load: there each lane keeps four 16-byte weight loads in flight (5.56 to
// 4.95 ms a token on the Qwen3-30B-A3B shape, H200). A batch gives experts several pairs, whose
// arithmetic should already overlap the loads, so the deeper pipeline only costs registers there:
// batch 16 ran at 23.2 ms a step with four loads, against 18.1 ms for the kernels before these,
// which kept one. Batches keep one (not yet measured in this form).
#include <algorithm>

#include "core/cuda/cuda_check.h"
#include "ops/cuda/common.cuh"
#include "ops/cuda/expert_mlp.h"

namespace shardlm::cuda {

// ---------------------------------------------------------------------------------------------
// kernels

constexpr int kExpertWarps = 8;
constexpr int kDeepWeightLoads = 4;  // one row's decode step
constexpr int kCombineThreads = 256;

struct alignas(16) Bf16x8 {
  __nv_bfloat162 values[4];
};

__device__ __forceinline__ float dot8(const Bf16x8& a, const Bf16x8& b) {
  float sum = 0.0f;
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 x = __bfloat1622float2(a.values[i]), y = __bfloat1622float2(b.values[i]);
    sum += x.x * y.x + x.y * y.y;
  }
  return sum;
}

// The pairs of a pass, as indices of their rows (row = pair / top_k) or of the pairs themselves.
__device__ __forceinline__ void pass_indices(const ExpertMlpParams& p, int first, int n, int divisor,
                                             int (&indices)[kExpertPairsPerPass]) {
#pragma unroll
  for (int i = 0; i < kExpertPairsPerPass; ++i) indices[i] = i < n ? p.pairs[first + i] / divisor : 0;
}

// activated[pair, j] = silu(gate_e[j] · x[row]) * (up_e[j] · x[row]), j = this warp's feature.
template <int kWeightLoads>
__global__ void expert_gate_up_kernel(ExpertMlpParams p) {
  const int expert = p.active[blockIdx.y];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int j = blockIdx.x * kExpertWarps + warp;
  if (expert < 0 || j >= p.ff) return;
  const int64_t local = expert - p.first_expert;
  const int begin = p.offsets[expert], end = p.offsets[expert + 1];
  const Bf16x8* gate = reinterpret_cast<const Bf16x8*>(p.gate_up + (local * 2 * p.ff + j) * p.hidden);
  const Bf16x8* up = reinterpret_cast<const Bf16x8*>(p.gate_up + (local * 2 * p.ff + p.ff + j) * p.hidden);
  const int chunks = p.hidden / 8;
  for (int first = begin; first < end; first += kExpertPairsPerPass) {
    const int n = min(kExpertPairsPerPass, end - first);
    int rows[kExpertPairsPerPass];
    pass_indices(p, first, n, p.top_k, rows);
    float g[kExpertPairsPerPass] = {}, u[kExpertPairsPerPass] = {};
    for (int base = lane; base < chunks; base += 32 * kWeightLoads) {
      Bf16x8 wg[kWeightLoads], wu[kWeightLoads];
#pragma unroll
      for (int l = 0; l < kWeightLoads; ++l)
        if (base + 32 * l < chunks) {
          wg[l] = gate[base + 32 * l];
          wu[l] = up[base + 32 * l];
        }
#pragma unroll
      for (int l = 0; l < kWeightLoads; ++l) {
        if (base + 32 * l >= chunks) break;
#pragma unroll
        for (int i = 0; i < kExpertPairsPerPass; ++i) {
          if (i >= n) break;
          const Bf16x8 x = reinterpret_cast<const Bf16x8*>(p.x + int64_t(rows[i]) * p.hidden)[base + 32 * l];
          g[i] += dot8(wg[l], x);
          u[i] += dot8(wu[l], x);
        }
      }
    }
#pragma unroll
    for (int i = 0; i < kExpertPairsPerPass; ++i) {
      if (i >= n) break;
      const float gate_sum = warp_sum(g[i]), up_sum = warp_sum(u[i]);
      if (lane == 0)
        p.activated[int64_t(p.pairs[first + i]) * p.ff + j] = __float2bfloat16(gate_sum / (1.0f + __expf(-gate_sum)) * up_sum);
    }
  }
}

// expert_out[pair, d] = down_e[d] · activated[pair], d = this warp's feature.
template <int kWeightLoads>
__global__ void expert_down_kernel(ExpertMlpParams p) {
  const int expert = p.active[blockIdx.y];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int d = blockIdx.x * kExpertWarps + warp;
  if (expert < 0 || d >= p.hidden) return;
  const int64_t local = expert - p.first_expert;
  const int begin = p.offsets[expert], end = p.offsets[expert + 1];
  const Bf16x8* down = reinterpret_cast<const Bf16x8*>(p.down + (local * p.hidden + d) * p.ff);
  const int chunks = p.ff / 8;
  for (int first = begin; first < end; first += kExpertPairsPerPass) {
    const int n = min(kExpertPairsPerPass, end - first);
    int pairs[kExpertPairsPerPass];
    pass_indices(p, first, n, 1, pairs);
    float sum[kExpertPairsPerPass] = {};
    for (int base = lane; base < chunks; base += 32 * kWeightLoads) {
      Bf16x8 w[kWeightLoads];
#pragma unroll
      for (int l = 0; l < kWeightLoads; ++l)
        if (base + 32 * l < chunks) w[l] = down[base + 32 * l];
#pragma unroll
      for (int l = 0; l < kWeightLoads; ++l) {
        if (base + 32 * l >= chunks) break;
#pragma unroll
        for (int i = 0; i < kExpertPairsPerPass; ++i) {
          if (i >= n) break;
          const Bf16x8 h = reinterpret_cast<const Bf16x8*>(p.activated + int64_t(pairs[i]) * p.ff)[base + 32 * l];
          sum[i] += dot8(w[l], h);
        }
      }
    }
#pragma unroll
    for (int i = 0; i < kExpertPairsPerPass; ++i) {
      if (i >= n) break;
      const float total = warp_sum(sum[i]);
      if (lane == 0) p.expert_out[int64_t(pairs[i]) * p.hidden + d] = total;
    }
  }
}

// Both combines take a block per (row, kCombineThreads features): a decode step has few rows, and a
// block per row left most multiprocessors idle (16 blocks took 20 us a layer at batch 16, H200).
__global__ void expert_combine_kernel(ExpertCombineParams p) {
  const int row = blockIdx.x;
  const int d = blockIdx.y * blockDim.x + threadIdx.x;
  if (d >= p.hidden) return;
  float sum = 0.0f;
  for (int slot = 0; slot < p.top_k; ++slot) {
    const int64_t pair = int64_t(row) * p.top_k + slot;
    const int expert = p.experts[pair];
    if (expert >= p.first_expert && expert < p.end_expert) sum += p.weights[pair] * p.expert_out[pair * p.hidden + d];
  }
  p.out[int64_t(row) * p.hidden + d] += sum;
}

__global__ void gather_expert_rows_kernel(GatherExpertRowsParams p) {
  const int i = blockIdx.x;
  const int pair = p.pairs[i];
  if (threadIdx.x == 0) p.positions[pair] = i;
  const uint4* from = reinterpret_cast<const uint4*>(p.x + int64_t(pair / p.top_k) * p.hidden);
  uint4* to = reinterpret_cast<uint4*>(p.rows + int64_t(i) * p.hidden);
  for (int c = threadIdx.x; c < p.hidden / 8; c += blockDim.x) to[c] = from[c];
}

__global__ void grouped_expert_combine_kernel(GroupedExpertCombineParams p) {
  const int row = blockIdx.x;
  const int d = blockIdx.y * blockDim.x + threadIdx.x;
  if (d >= p.hidden) return;
  float sum = 0.0f;
  for (int slot = 0; slot < p.top_k; ++slot) {
    const int64_t pair = int64_t(row) * p.top_k + slot;
    const int expert = p.experts[pair];
    if (expert >= p.first_expert && expert < p.end_expert)
      sum += p.weights[pair] * __bfloat162float(p.grouped_out[int64_t(p.positions[pair]) * p.hidden + d]);
  }
  p.out[int64_t(row) * p.hidden + d] += sum;
}

// A block per row: the gate's dot product with the row, then the scaled shared output added.
__global__ void shared_expert_add_kernel(SharedExpertAddParams p) {
  const int64_t row = blockIdx.x;
  float dot = 0.0f;
  for (int d = threadIdx.x; d < p.hidden; d += blockDim.x)
    dot += __bfloat162float(p.gate[d]) * __bfloat162float(p.x[row * p.hidden + d]);
  const float scale = 1.0f / (1.0f + __expf(-block_sum(dot)));
  for (int d = threadIdx.x; d < p.hidden; d += blockDim.x)
    p.out[row * p.hidden + d] += scale * __bfloat162float(p.shared_out[row * p.hidden + d]);
}

__global__ void add_f32_kernel(float* out, const float* delta, int64_t count) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < count; i += int64_t(gridDim.x) * blockDim.x)
    out[i] += delta[i];
}

// ---------------------------------------------------------------------------------------------
// launchers

void check_expert_operands(const ExpertMlpParams& params) {
  const auto aligned = [](const void* pointer) { return reinterpret_cast<uintptr_t>(pointer) % 16 == 0; };
  if (params.hidden % 8 != 0) throw_unsupported("experts whose hidden size is not a multiple of 8", params.hidden);
  if (params.ff % 8 != 0) throw_unsupported("experts whose width is not a multiple of 8", params.ff);
  if (!aligned(params.x) || !aligned(params.gate_up) || !aligned(params.down) || !aligned(params.activated))
    throw_unsupported("expert buffers not 16-byte aligned", 0);
  if (params.first_expert < 0 || params.n_local_experts < 0 ||
      params.first_expert + params.n_local_experts > params.n_experts)
    throw_unsupported("a rank's experts beyond the layer's", params.first_expert + params.n_local_experts);
}

// A block row per chosen expert (the rest of the rows find -1 in `active` and return).
template <int kWeightLoads>
void launch_expert_pair_kernels(const ExpertMlpParams& params, cudaStream_t stream) {
  const int chosen = std::min(params.n_local_experts, params.n_rows * params.top_k);
  const dim3 gate_up_grid((params.ff + kExpertWarps - 1) / kExpertWarps, chosen);
  expert_gate_up_kernel<kWeightLoads><<<gate_up_grid, kExpertWarps * 32, 0, stream>>>(params);
  CUDA_CHECK_LAUNCH();
  const dim3 down_grid((params.hidden + kExpertWarps - 1) / kExpertWarps, chosen);
  expert_down_kernel<kWeightLoads><<<down_grid, kExpertWarps * 32, 0, stream>>>(params);
  CUDA_CHECK_LAUNCH();
}

void launch_expert_mlp(const ExpertMlpParams& params, cudaStream_t stream) {
  check_expert_operands(params);
  if (params.active == nullptr) throw_unsupported("expert pair kernels without the list of chosen experts", 0);
  if (params.n_rows == 0 || params.n_local_experts == 0) return;
  if (params.n_rows == 1) launch_expert_pair_kernels<kDeepWeightLoads>(params, stream);
  else launch_expert_pair_kernels<1>(params, stream);
}

void launch_expert_combine(const ExpertCombineParams& params, cudaStream_t stream) {
  if (params.first_expert > params.end_expert) throw_unsupported("a rank's expert range ending before it starts", params.end_expert);
  if (params.n_rows == 0 || params.hidden == 0) return;
  expert_combine_kernel<<<dim3(params.n_rows, (params.hidden + kCombineThreads - 1) / kCombineThreads), kCombineThreads, 0,
                          stream>>>(params);
  CUDA_CHECK_LAUNCH();
}

void launch_gather_expert_rows(const GatherExpertRowsParams& params, cudaStream_t stream) {
  if (params.hidden % 8 != 0) throw_unsupported("experts whose hidden size is not a multiple of 8", params.hidden);
  if (params.n_grouped == 0) return;
  gather_expert_rows_kernel<<<params.n_grouped, 128, 0, stream>>>(params);
  CUDA_CHECK_LAUNCH();
}

void launch_grouped_expert_combine(const GroupedExpertCombineParams& params, cudaStream_t stream) {
  if (params.first_expert > params.end_expert) throw_unsupported("a rank's expert range ending before it starts", params.end_expert);
  if (params.n_rows == 0 || params.hidden == 0) return;
  grouped_expert_combine_kernel<<<dim3(params.n_rows, (params.hidden + kCombineThreads - 1) / kCombineThreads),
                                  kCombineThreads, 0, stream>>>(params);
  CUDA_CHECK_LAUNCH();
}

void launch_shared_expert_add(const SharedExpertAddParams& params, cudaStream_t stream) {
  if (params.n_rows == 0) return;
  shared_expert_add_kernel<<<params.n_rows, 256, 0, stream>>>(params);
  CUDA_CHECK_LAUNCH();
}

void launch_add_f32(float* out, const float* delta, int64_t count, cudaStream_t stream) {
  if (count == 0) return;
  const int blocks = int(std::min<int64_t>((count + 255) / 256, 1024));
  add_f32_kernel<<<blocks, 256, 0, stream>>>(out, delta, count);
  CUDA_CHECK_LAUNCH();
}

}  // namespace shardlm::cuda
