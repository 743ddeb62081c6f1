// Attention kernel: one block of 4 warps per (row, head, split). The warps take turns over groups
// of 4 keys of the block's range, each keeping a running max, sum and weighted value sum (online
// softmax); lanes hold head_dim/32 elements each. The warps' states are then merged in shared
// memory. With several splits the unnormalised states go to scratch, and the split that finishes
// last (a counter per row and head) combines them, so a decode step's attention is one kernel.
#include <cmath>

#include "backend/cuda/cuda_check.h"
#include "backend/cuda/kernels/attention.h"
#include "backend/cuda/kernels/common.cuh"
#include "backend/cuda/kernels/pdl.cuh"

namespace shardlm::cuda {

// ---------------------------------------------------------------------------------------------
// kernels

constexpr int kAttentionWarps = 4;
constexpr int kKeysPerStep = 4;

// The row's output for one head from every split's unnormalised state (run by the last split).
// The first warp turns the splits' maxima and sums into one weight per split; then every thread
// combines its elements. The states were written by other blocks: they are read from L2, where
// those blocks' fences made them visible.
__device__ void merge_splits(const AttentionParams& p, int row, int head) {
  __shared__ float split_weights[kMaxAttentionSplits];
  const int lane = threadIdx.x % 32;
  const float* states = p.partial + (int64_t(row) * p.n_heads + head) * p.n_splits * (p.head_dim + 2);
  if (threadIdx.x < 32) {
    const float split_max = lane < p.n_splits ? __ldcg(states + lane * (p.head_dim + 2)) : -INFINITY;
    const float split_sum = lane < p.n_splits ? __ldcg(states + lane * (p.head_dim + 2) + 1) : 0.0f;
    const float merged_max = warp_max(split_max);
    const float weight = split_max == -INFINITY ? 0.0f : __expf(split_max - merged_max);
    const float merged_sum = warp_sum(split_sum * weight);
    if (lane < p.n_splits) split_weights[lane] = weight / merged_sum;
  }
  __syncthreads();
  for (int d = threadIdx.x; d < p.head_dim; d += blockDim.x) {
    float value = 0.0f;
    for (int s = 0; s < p.n_splits; ++s) value += __ldcg(states + s * (p.head_dim + 2) + 2 + d) * split_weights[s];
    p.out[int64_t(row) * p.n_heads * p.head_dim + head * p.head_dim + d] = __float2bfloat16(value);
  }
}

template <int kElementsPerLane>
__global__ void attention_kernel(AttentionParams p) {
  wait_for_predecessor();
  allow_successor();
  const int row = blockIdx.x, head = blockIdx.y, split = blockIdx.z;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int group = p.n_heads / p.n_kv_heads;
  const int kv_dim = p.n_kv_heads * p.head_dim;
  const int position = p.positions[row];
  const int first = p.sliding_window > 0 ? max(0, position - p.sliding_window + 1) : 0;
  const int length = position - first + 1;
  const int chunk = (length + p.n_splits - 1) / p.n_splits;
  const int begin = first + split * chunk;
  const int end = min(begin + chunk, position + 1);

  float q[kElementsPerLane];
  const __nv_bfloat16* q_row = p.q + int64_t(row) * p.n_heads * p.head_dim + head * p.head_dim;
#pragma unroll
  for (int e = 0; e < kElementsPerLane; ++e) {
    const int d = lane * kElementsPerLane + e;
    q[e] = d < p.head_dim ? __bfloat162float(q_row[d]) * p.scale : 0.0f;
  }

  const int64_t sequence_base = int64_t(p.slots[row]) * p.capacity * kv_dim + (head / group) * p.head_dim;
  float running_max = -INFINITY, running_sum = 0.0f, acc[kElementsPerLane] = {};
  // Each warp takes kKeysPerStep consecutive keys at a time: all their loads are issued before the
  // first reduction, so the loads' latency overlaps instead of adding up key by key.
  for (int base = begin + warp * kKeysPerStep; base < end; base += kAttentionWarps * kKeysPerStep) {
    float k_values[kKeysPerStep][kElementsPerLane], v_values[kKeysPerStep][kElementsPerLane];
#pragma unroll
    for (int j = 0; j < kKeysPerStep; ++j) {
      const bool key_inside = base + j < end;
      const __nv_bfloat16* k_row = p.k_cache + sequence_base + int64_t(base + j) * kv_dim;
      const __nv_bfloat16* v_row = p.v_cache + sequence_base + int64_t(base + j) * kv_dim;
#pragma unroll
      for (int e = 0; e < kElementsPerLane; ++e) {
        const int d = lane * kElementsPerLane + e;
        const bool inside = key_inside && d < p.head_dim;
        k_values[j][e] = inside ? __bfloat162float(k_row[d]) : 0.0f;
        v_values[j][e] = inside ? __bfloat162float(v_row[d]) : 0.0f;
      }
    }
    float scores[kKeysPerStep];
#pragma unroll
    for (int j = 0; j < kKeysPerStep; ++j) {
      float dot = 0.0f;
#pragma unroll
      for (int e = 0; e < kElementsPerLane; ++e) dot += q[e] * k_values[j][e];
      scores[j] = dot;
    }
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1)
#pragma unroll
      for (int j = 0; j < kKeysPerStep; ++j) scores[j] += __shfl_xor_sync(0xffffffffu, scores[j], offset);
    float new_max = running_max;
#pragma unroll
    for (int j = 0; j < kKeysPerStep; ++j) {
      if (base + j >= end) scores[j] = -INFINITY;
      new_max = fmaxf(new_max, scores[j]);
    }
    const float correction = __expf(running_max - new_max);
    running_sum *= correction;
#pragma unroll
    for (int e = 0; e < kElementsPerLane; ++e) acc[e] *= correction;
#pragma unroll
    for (int j = 0; j < kKeysPerStep; ++j) {
      const float weight = __expf(scores[j] - new_max);
      running_sum += weight;
#pragma unroll
      for (int e = 0; e < kElementsPerLane; ++e) acc[e] = fmaf(weight, v_values[j][e], acc[e]);
    }
    running_max = new_max;
  }

  // Merge the warps: each publishes (max, sum, acc); every thread then combines them.
  __shared__ float warp_max_values[kAttentionWarps], warp_sums[kAttentionWarps];
  __shared__ float warp_acc[kAttentionWarps][32 * kElementsPerLane];
  if (lane == 0) {
    warp_max_values[warp] = running_max;
    warp_sums[warp] = running_sum;
  }
#pragma unroll
  for (int e = 0; e < kElementsPerLane; ++e) warp_acc[warp][lane * kElementsPerLane + e] = acc[e];
  __syncthreads();

  float block_max = -INFINITY;
  for (int w = 0; w < kAttentionWarps; ++w) block_max = fmaxf(block_max, warp_max_values[w]);
  float scales[kAttentionWarps], block_sum_value = 0.0f;
  for (int w = 0; w < kAttentionWarps; ++w) {
    scales[w] = warp_max_values[w] == -INFINITY ? 0.0f : __expf(warp_max_values[w] - block_max);
    block_sum_value += warp_sums[w] * scales[w];
  }
  for (int d = threadIdx.x; d < p.head_dim; d += blockDim.x) {
    float value = 0.0f;
    for (int w = 0; w < kAttentionWarps; ++w) value += warp_acc[w][d] * scales[w];
    if (p.n_splits == 1) {
      p.out[int64_t(row) * p.n_heads * p.head_dim + head * p.head_dim + d] = __float2bfloat16(value / block_sum_value);
    } else {
      float* state = p.partial + ((int64_t(row) * p.n_heads + head) * p.n_splits + split) * (p.head_dim + 2);
      state[2 + d] = value;
      if (d == 0) {
        state[0] = block_max;
        state[1] = block_sum_value;
      }
    }
  }
  if (p.n_splits == 1) return;
  // Publish this split's state, then count it in; the split that arrives last merges them all and
  // resets the counter for the next step (and the next replay of a graph).
  __shared__ bool last_split;
  __threadfence();
  __syncthreads();
  if (threadIdx.x == 0) {
    int* arrived = p.split_counters + row * p.n_heads + head;
    last_split = atomicAdd(arrived, 1) == p.n_splits - 1;
    if (last_split) *arrived = 0;
  }
  __syncthreads();
  if (!last_split) return;
  __threadfence();
  merge_splits(p, row, head);
}

// ---------------------------------------------------------------------------------------------
// launchers

int64_t attention_partial_floats(int n_rows, int n_heads, int n_splits, int head_dim) {
  return n_splits > 1 ? int64_t(n_rows) * n_heads * n_splits * attention_state_floats(head_dim) : 0;
}

void launch_attention(const AttentionParams& params, cudaStream_t stream) {
  if (params.n_rows == 0) return;
  if (params.n_splits < 1 || params.n_splits > kMaxAttentionSplits)
    throw_unsupported("attention splits outside 1..32", params.n_splits);
  const dim3 grid(params.n_rows, params.n_heads, params.n_splits);
  const int threads = 32 * kAttentionWarps;
  if (params.head_dim <= 32) launch_pdl(attention_kernel<1>, grid, threads, 0, stream, params);
  else if (params.head_dim <= 64) launch_pdl(attention_kernel<2>, grid, threads, 0, stream, params);
  else if (params.head_dim <= 128) launch_pdl(attention_kernel<4>, grid, threads, 0, stream, params);
  else if (params.head_dim <= 256) launch_pdl(attention_kernel<8>, grid, threads, 0, stream, params);
  else throw_unsupported("attention head_dim above 256", params.head_dim);
  CUDA_CHECK_LAUNCH();
}

}  // namespace shardlm::cuda
