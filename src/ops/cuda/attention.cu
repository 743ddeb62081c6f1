// Attention kernel: one block of 4 warps per (row, KV head, split), computing the query heads that
// share the KV head (up to 8 per block; wider groups take several blocks, and launches of few rows
// fewer heads a block, see heads_per_block), so each key and value is read once per block. The
// warps take turns over groups of 4 keys of the block's range, each keeping per head a running max,
// sum and weighted value sum (online softmax); lanes hold head_dim/32 elements each, read with one
// vector load. The warps' states are then merged in shared memory. With several splits the
// unnormalised states go to scratch, and the split that finishes last (a counter per row and block
// of heads) combines them, so a decode step's attention is one kernel. At batch 16 on an H200
// (Llama-3-8B, 520 keys, 16 splits) a layer's attention took 64 us with a block per query head, 38
// us with a block per KV head. Keys and values are read through the sequence's block table
// (ops/cuda/paged_kv.h); a split's first keys are asked of L2 before the kernel waits for its
// predecessor (Qwen3-30B-A3B at batch 1 on an H100: 3.50 ms a token without, 3.47 with).
#include <cmath>
#include <type_traits>

#include "core/cuda/cuda_check.h"
#include "ops/cuda/attention.h"
#include "ops/cuda/common.cuh"
#include "ops/cuda/pdl.cuh"

namespace shardlm::cuda {

// ---------------------------------------------------------------------------------------------
// kernels

constexpr int kAttentionWarps = 4;
constexpr int kKeysPerStep = 4;
constexpr int kMergeSplitsInFlight = 8;
constexpr int kPrefetchedKeys = 64;  // a split's first keys, asked of L2 before the wait

// The E consecutive bf16 elements of a lane, from one load of 2E bytes.
template <int E>
__device__ __forceinline__ void load_lane(const __nv_bfloat16* source, float (&out)[E]) {
  if constexpr (E == 1) {
    out[0] = __bfloat162float(*source);
  } else {
    using Vector = std::conditional_t<E == 2, uint32_t, std::conditional_t<E == 4, uint2, uint4>>;
    const Vector packed = *reinterpret_cast<const Vector*>(source);
    const __nv_bfloat162* pairs = reinterpret_cast<const __nv_bfloat162*>(&packed);
#pragma unroll
    for (int i = 0; i < E / 2; ++i) {
      const float2 values = __bfloat1622float2(pairs[i]);
      out[2 * i] = values.x;
      out[2 * i + 1] = values.y;
    }
  }
}

// Which query heads a block computes: blockIdx.y enumerates (KV head, block of up to H heads).
struct BlockHeads {
  int first, count;
};

template <int H>
__device__ __forceinline__ BlockHeads block_heads(const AttentionParams& p) {
  const int group = p.n_heads / p.n_kv_heads;
  const int blocks_per_group = (group + H - 1) / H;
  const int kv_head = blockIdx.y / blocks_per_group;
  const int first = kv_head * group + (blockIdx.y % blocks_per_group) * H;
  return {first, min(H, (kv_head + 1) * group - first)};
}

// Every split's unnormalised state of the block's heads, combined into the rows' outputs (run by
// the last split). Each warp takes its heads together: its lanes turn each head's splits' maxima and
// sums into one weight per split, then combine their elements. The states were written by other
// blocks: they are read from L2, where those blocks' fences made them visible.
template <int E, int H>
__device__ void merge_splits(const AttentionParams& p, int row, int local_row, BlockHeads heads) {
  // A warp's heads (up to kHeads: warp, warp + kAttentionWarps, ...) go together, so their loads
  // share each round trip to L2. Heads past the block's count read the first head again and store
  // nothing.
  constexpr int kHeads = (H + kAttentionWarps - 1) / kAttentionWarps;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int64_t state_floats = attention_state_floats(p.head_dim);
  const float* states[kHeads];
  float normalised_weight[kHeads];
#pragma unroll
  for (int j = 0; j < kHeads; ++j) {
    const int h = warp + j * kAttentionWarps;
    const int head = heads.first + (h < heads.count ? h : 0);
    states[j] = p.partial + (int64_t(local_row) * p.n_heads + head) * p.n_splits * state_floats;
  }
  float split_max[kHeads], split_sum[kHeads];
#pragma unroll
  for (int j = 0; j < kHeads; ++j) {
    split_max[j] = lane < p.n_splits ? __ldcg(states[j] + lane * state_floats) : -INFINITY;
    split_sum[j] = lane < p.n_splits ? __ldcg(states[j] + lane * state_floats + 1) : 0.0f;
  }
#pragma unroll
  for (int j = 0; j < kHeads; ++j) {
    const float merged_max = warp_max(split_max[j]);
    const float weight = split_max[j] == -INFINITY ? 0.0f : __expf(split_max[j] - merged_max);
    normalised_weight[j] = weight / warp_sum(split_sum[j] * weight);
  }
  // The splits' elements are loaded kMergeSplitsInFlight at a time, all before any is used: one
  // split after another waited on L2 once per split (22 us a batch-1 layer on an H100, Qwen3-30B-A3B
  // shape, 32 splits; 18.8 with eight splits in flight).
  float value[kHeads][E] = {};
  for (int s0 = 0; s0 < p.n_splits; s0 += kMergeSplitsInFlight) {
    float loaded[kHeads][kMergeSplitsInFlight][E];
#pragma unroll
    for (int j = 0; j < kHeads; ++j)
#pragma unroll
      for (int i = 0; i < kMergeSplitsInFlight; ++i) {
        const int s = min(s0 + i, p.n_splits - 1);
#pragma unroll
        for (int e = 0; e < E; ++e) {
          const int d = lane * E + e;
          loaded[j][i][e] = d < p.head_dim ? __ldcg(states[j] + s * state_floats + 2 + d) : 0.0f;
        }
      }
#pragma unroll
    for (int j = 0; j < kHeads; ++j)
#pragma unroll
      for (int i = 0; i < kMergeSplitsInFlight; ++i) {
        // Lanes past the last split hold weight 0 (their max is -inf), so a split read twice adds nothing.
        const float split_weight = __shfl_sync(0xffffffffu, normalised_weight[j], (s0 + i) % 32);
        const float weight_here = s0 + i < p.n_splits ? split_weight : 0.0f;
#pragma unroll
        for (int e = 0; e < E; ++e) value[j][e] = fmaf(loaded[j][i][e], weight_here, value[j][e]);
      }
  }
#pragma unroll
  for (int j = 0; j < kHeads; ++j) {
    const int h = warp + j * kAttentionWarps;
    if (h >= heads.count) continue;
#pragma unroll
    for (int e = 0; e < E; ++e) {
      const int d = lane * E + e;
      if (d < p.head_dim) p.out[(int64_t(row) * p.n_heads + heads.first + h) * p.head_dim + d] = __float2bfloat16(value[j][e]);
    }
  }
}

// Asks L2 for the head's keys and values of positions [begin, end) before the kernel waits for its
// predecessor, so that the chain of dependent loads after the wait starts from L2 instead of
// memory. A prefetch is only a hint into L2, where memory is coherent, so it may run ahead of the
// wait even for positions the predecessor is still writing.
__device__ __forceinline__ void prefetch_split_keys(const AttentionParams& p, const int32_t* table, int head_offset,
                                                    int begin, int end) {
  constexpr int kLineBytes = 128;
  const int lines_per_key = (p.head_dim * int(sizeof(__nv_bfloat16)) + kLineBytes - 1) / kLineBytes;
  const int kv_dim = p.n_kv_heads * p.head_dim;
  const int64_t block_elements = int64_t(kv_dim) << p.kv.block_shift;
  const int row_mask = (1 << p.kv.block_shift) - 1;
  for (int index = threadIdx.x; index < (end - begin) * lines_per_key; index += blockDim.x) {
    const int key = begin + index / lines_per_key;
    const int64_t at = int64_t(table[key >> p.kv.block_shift]) * block_elements + (key & row_mask) * kv_dim +
                       head_offset + (index % lines_per_key) * (kLineBytes / int(sizeof(__nv_bfloat16)));
    asm volatile("prefetch.global.L2 [%0];" ::"l"(p.k_cache + at));
    asm volatile("prefetch.global.L2 [%0];" ::"l"(p.v_cache + at));
  }
}

template <int E, int H>
__global__ void __launch_bounds__(32 * kAttentionWarps) attention_kernel(AttentionParams p) {
  // The step's inputs and the block tables were copied before the step's first kernel, so they are
  // read before waiting for the previous kernel (which writes q and this step's keys): the chain
  // position -> table -> keys then overlaps that kernel's tail.
  // local_row: the launch's row, which the scratch is indexed by; row: the pass's.
  const int local_row = blockIdx.x, split = blockIdx.z;
  const int row = p.row_index ? p.row_index[local_row] : local_row;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const BlockHeads heads = block_heads<H>(p);
  const int group = p.n_heads / p.n_kv_heads;
  const int kv_dim = p.n_kv_heads * p.head_dim;
  const int position = p.positions[row];
  const int first = p.sliding_window > 0 ? max(0, position - p.sliding_window + 1) : 0;
  const int length = position - first + 1;
  const int chunk = (length + p.n_splits - 1) / p.n_splits;
  const int begin = first + split * chunk;
  const int end = min(begin + chunk, position + 1);
  const bool lane_inside = lane * E < p.head_dim;  // head_dim is a multiple of E
  // When the split's keys lie in at most 32 blocks (decode, whose splits are short), each lane
  // holds one of their block ids and the loop fetches them by shuffle, with no load of its own
  // besides the keys and values; longer ranges look each key's block up in the table.
  const int32_t* table = p.kv.tables + int64_t(p.slots[row]) * p.kv.blocks_per_sequence;
  const int shift = p.kv.block_shift;
  const int row_mask = (1 << shift) - 1;
  const int window = begin >> shift;
  const bool windowed = end <= begin || ((end - 1) >> shift) - window < 32;
  const int32_t lane_block = windowed && window + lane < p.kv.blocks_per_sequence ? table[window + lane] : 0;
  prefetch_split_keys(p, table, (heads.first / group) * p.head_dim, begin, min(end, begin + kPrefetchedKeys));
  wait_for_predecessor();
  allow_successor();

  float q[H][E] = {};
#pragma unroll
  for (int h = 0; h < H; ++h)
    if (h < heads.count && lane_inside) {
      load_lane<E>(p.q + (int64_t(row) * p.n_heads + heads.first + h) * p.head_dim + lane * E, q[h]);
#pragma unroll
      for (int e = 0; e < E; ++e) q[h][e] *= p.scale;
    }

  const int lane_offset = (heads.first / group) * p.head_dim + lane * E;
  const int64_t block_elements = int64_t(kv_dim) << shift;
  float running_max[H], running_sum[H] = {}, acc[H][E] = {};
#pragma unroll
  for (int h = 0; h < H; ++h) running_max[h] = -INFINITY;
  // Each warp takes kKeysPerStep consecutive keys at a time: all their loads are issued before the
  // first reduction, so the loads' latency overlaps instead of adding up key by key.
  for (int base = begin + warp * kKeysPerStep; base < end; base += kAttentionWarps * kKeysPerStep) {
    // Keys past the end read the last key again (their scores are masked below): the loads need
    // no branch of their own, so all of them are issued back to back. (A branch around each key's
    // loads, with the block lookup in the address, doubled the time warps waited on memory: at
    // batch 16 on an H200, 38 us per layer instead of 32.)
    int64_t at[kKeysPerStep];
#pragma unroll
    for (int j = 0; j < kKeysPerStep; ++j) {
      const int key = min(base + j, end - 1);
      const int32_t block = windowed ? __shfl_sync(0xffffffffu, lane_block, min((key >> shift) - window, 31))
                                     : table[key >> shift];
      at[j] = int64_t(block) * block_elements + (key & row_mask) * kv_dim + lane_offset;
    }
    float k_values[kKeysPerStep][E] = {}, v_values[kKeysPerStep][E] = {};
    if (lane_inside) {
#pragma unroll
      for (int j = 0; j < kKeysPerStep; ++j) {
        load_lane<E>(p.k_cache + at[j], k_values[j]);
        load_lane<E>(p.v_cache + at[j], v_values[j]);
      }
    }
    // The step's H x kKeysPerStep dot products, summed over the warp so that each lane ends with
    // one of them (lanes kLanesPerScore apart hold the heads' keys in turn), then each head's
    // step maximum and every weight handed to every lane: 38 shuffles a step at 4 heads, where
    // summing each score over the warp took 80 (at batch 500 the shuffles, not the loads, bounded
    // the kernel).
    constexpr int kScores = H * kKeysPerStep;
    constexpr int kLanesPerScore = 32 / kScores;
    float partial[kScores];
#pragma unroll
    for (int h = 0; h < H; ++h)
#pragma unroll
      for (int j = 0; j < kKeysPerStep; ++j) {
        float dot = 0.0f;
#pragma unroll
        for (int e = 0; e < E; ++e) dot += q[h][e] * k_values[j][e];
        partial[h * kKeysPerStep + j] = dot;
      }
    const int mine = lane / kLanesPerScore;
    const int my_head = mine / kKeysPerStep, my_key = mine % kKeysPerStep;
    float score = warp_reduce_scatter<kScores>(partial, lane);
    if (base + my_key >= end) score = -INFINITY;
    float step_max = score;
#pragma unroll
    for (int offset = kLanesPerScore; offset < kLanesPerScore * kKeysPerStep; offset *= 2)
      step_max = fmaxf(step_max, __shfl_xor_sync(0xffffffffu, step_max, offset));
    float my_max = 0.0f;
#pragma unroll
    for (int h = 0; h < H; ++h) {
      // Key 0 of a step is always inside the range, so each head's new maximum is finite.
      const float new_max =
          fmaxf(running_max[h], __shfl_sync(0xffffffffu, step_max, h * kKeysPerStep * kLanesPerScore));
      const float correction = __expf(running_max[h] - new_max);
      running_max[h] = new_max;
      running_sum[h] *= correction;
#pragma unroll
      for (int e = 0; e < E; ++e) acc[h][e] *= correction;
      if (h == my_head) my_max = new_max;
    }
    const float my_weight = __expf(score - my_max);
#pragma unroll
    for (int h = 0; h < H; ++h)
#pragma unroll
      for (int j = 0; j < kKeysPerStep; ++j) {
        const float weight = __shfl_sync(0xffffffffu, my_weight, (h * kKeysPerStep + j) * kLanesPerScore);
        running_sum[h] += weight;
#pragma unroll
        for (int e = 0; e < E; ++e) acc[h][e] = fmaf(weight, v_values[j][e], acc[h][e]);
      }
  }

  // Merge the warps: each publishes (max, sum, acc) per head; the threads then combine them.
  __shared__ float warp_max_values[kAttentionWarps][H], warp_sums[kAttentionWarps][H];
  __shared__ float warp_acc[kAttentionWarps][H][32 * E];
#pragma unroll
  for (int h = 0; h < H; ++h) {
    if (lane == 0) {
      warp_max_values[warp][h] = running_max[h];
      warp_sums[warp][h] = running_sum[h];
    }
#pragma unroll
    for (int e = 0; e < E; ++e) warp_acc[warp][h][lane * E + e] = acc[h][e];
  }
  __syncthreads();

  for (int index = threadIdx.x; index < heads.count * p.head_dim; index += blockDim.x) {
    const int h = index / p.head_dim, d = index % p.head_dim;
    float block_max = -INFINITY;
    for (int w = 0; w < kAttentionWarps; ++w) block_max = fmaxf(block_max, warp_max_values[w][h]);
    float value = 0.0f, block_sum_value = 0.0f;
    for (int w = 0; w < kAttentionWarps; ++w) {
      const float scale = warp_max_values[w][h] == -INFINITY ? 0.0f : __expf(warp_max_values[w][h] - block_max);
      block_sum_value += warp_sums[w][h] * scale;
      value += warp_acc[w][h][d] * scale;
    }
    if (p.n_splits == 1) {
      p.out[(int64_t(row) * p.n_heads + heads.first + h) * p.head_dim + d] = __float2bfloat16(value / block_sum_value);
    } else {
      const int64_t local_row_head = int64_t(local_row) * p.n_heads + heads.first + h;
      float* state = p.partial + (local_row_head * p.n_splits + split) * attention_state_floats(p.head_dim);
      state[2 + d] = value;
      if (d == 0) {
        state[0] = block_max;
        state[1] = block_sum_value;
      }
    }
  }
  if (p.n_splits == 1) return;
  // Publish this split's states, then count it in; the split that arrives last merges them all and
  // resets the counter for the next step (and the next replay of a graph).
  __shared__ bool last_split;
  __threadfence();
  __syncthreads();
  if (threadIdx.x == 0) {
    int* arrived = p.split_counters + int64_t(local_row) * gridDim.y + blockIdx.y;
    last_split = atomicAdd(arrived, 1) == p.n_splits - 1;
    if (last_split) *arrived = 0;
  }
  __syncthreads();
  if (!last_split) return;
  __threadfence();
  merge_splits<E, H>(p, row, local_row, heads);
}

// ---------------------------------------------------------------------------------------------
// launchers

namespace {

// Heads per block: up to the group, rounded up to a power of two, at most 8 (4 for 256-wide heads,
// to bound registers), while the launch keeps at least kHeadBlocksToFill blocks of heads per split.
// Few rows' attention is a chain of latencies, not a stream of keys: a block per query head shortens
// each block's chain (scores, shuffles, the last split's merge) and the chains run side by side,
// where sharing a key's load across the group saves little. On an H100, Qwen3-30B-A3B (32 heads over
// 4 KV heads) at batch 1 took 3.86 ms a token with 8 heads a block, 3.60 with 1; at batch 16, 17.8
// ms a step with 8, 17.0 with 4, 17.6 with 1; Llama-3-8B 5.68 / 5.61 ms (batch 1, 4 and 1 heads)
// and 6.95 / 7.39 (batch 16).
constexpr int64_t kHeadBlocksToFill = 128;

int heads_per_block(int n_rows, int n_heads, int group, int elements_per_lane) {
  const int most = elements_per_lane == 8 ? 4 : 8;
  int heads = 1;
  while (heads < group && heads < most && int64_t(n_rows) * n_heads / (2 * heads) >= kHeadBlocksToFill) heads *= 2;
  return heads;
}

int elements_per_lane(int head_dim) { return head_dim <= 32 ? 1 : head_dim <= 64 ? 2 : head_dim <= 128 ? 4 : 8; }

template <int E>
void launch_with_lane_width(const AttentionParams& params, cudaStream_t stream) {
  const int heads = heads_per_block(params.n_rows, params.n_heads, params.n_heads / params.n_kv_heads, E);
  const dim3 grid(params.n_rows,
                  attention_blocks_per_row(params.n_rows, params.n_heads, params.n_kv_heads, params.head_dim),
                  params.n_splits);
  const int threads = 32 * kAttentionWarps;
  switch (heads) {
    case 1: launch_pdl(attention_kernel<E, 1>, grid, threads, 0, stream, params); break;
    case 2: launch_pdl(attention_kernel<E, 2>, grid, threads, 0, stream, params); break;
    case 4: launch_pdl(attention_kernel<E, 4>, grid, threads, 0, stream, params); break;
    default:
      if constexpr (E < 8) launch_pdl(attention_kernel<E, 8>, grid, threads, 0, stream, params);
      break;
  }
}

}  // namespace

int attention_blocks_per_row(int n_rows, int n_heads, int n_kv_heads, int head_dim) {
  const int group = n_heads / n_kv_heads;
  const int heads = heads_per_block(n_rows, n_heads, group, elements_per_lane(head_dim));
  return n_kv_heads * ((group + heads - 1) / heads);
}

int64_t attention_partial_floats(int n_rows, int n_heads, int n_splits, int head_dim) {
  return n_splits > 1 ? int64_t(n_rows) * n_heads * n_splits * attention_state_floats(head_dim) : 0;
}

void launch_attention(const AttentionParams& params, cudaStream_t stream) {
  if (params.n_rows == 0) return;
  if (params.n_splits < 1 || params.n_splits > kMaxAttentionSplits)
    throw_unsupported("attention splits outside 1..32", params.n_splits);
  const int lane_width = elements_per_lane(params.head_dim);
  if (params.head_dim > 256) throw_unsupported("attention head_dim above 256", params.head_dim);
  if (params.head_dim % lane_width != 0)
    throw_unsupported("attention head_dim not a multiple of its per-lane width", params.head_dim);
  switch (lane_width) {
    case 1: launch_with_lane_width<1>(params, stream); break;
    case 2: launch_with_lane_width<2>(params, stream); break;
    case 4: launch_with_lane_width<4>(params, stream); break;
    default: launch_with_lane_width<8>(params, stream); break;
  }
  CUDA_CHECK_LAUNCH();
}

}  // namespace shardlm::cuda
