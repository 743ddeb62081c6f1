// One row's decode step needs no grouping: a warp computes two gate/up features of one slot's
// expert, one after the other, streaming each feature's weight rows with four 16-byte loads in flight
// per lane (latency bounds a warp that waits on each load), then one kernel does every slot's down
// projection and the combine. With routing alone for one row and the rows normalised by the router's
// GEMV, the Qwen3-30B-A3B shape went from 4.64 to 4.10 ms a token (H100, 2.23 ms floor). A feature a
// warp took 56 registers, so a multiprocessor held 4 of its 8-warp blocks and the 768 blocks ran in
// 1.45 waves: two features a warp make one wave (3.895 to 3.839 ms with the down weights' early
// loads below; forcing 6 blocks a multiprocessor spilled and took 4.41). Batches take the tensor-core
// tiles below. Every kernel here is launched with programmatic dependent launch (ops/cuda/pdl.cuh):
// each waits for its predecessor before reading anything it wrote, then lets its successor launch.
#include <algorithm>

#include "core/alignment.h"
#include "core/cuda/cuda_check.h"
#include "ops/cuda/common.cuh"
#include "ops/cuda/expert_mlp.h"
#include "ops/cuda/pdl.cuh"

namespace shardlm::cuda {

// ---------------------------------------------------------------------------------------------
// kernels

constexpr int kExpertWarps = 8;
constexpr int kRowLoads = 4;         // 16-byte weight loads a lane keeps in flight: one row's gate/up
constexpr int kCombineRowLoads = 8;  // and its down projections with the combine
constexpr int kCombineThreads = 256;
constexpr int kRowFeatures = 2;      // gate/up features a warp computes one after the other

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

// activated[slot, j] = silu(gate_e[j] · x) * (up_e[j] · x), j = this warp's features one after the
// other, for the one row's slot blockIdx.y (its pair), e the slot's expert: one row needs no grouping.
__global__ void expert_gate_up_row_kernel(ExpertMlpParams p, ExpertCombineParams c) {
  // Every block waits before it may exit or let the down kernel launch: that kernel reads the
  // routes before its own wait, trusting that their writer has finished (see below).
  wait_for_predecessor();
  allow_successor();
  const int pair = blockIdx.y, expert = c.experts[pair];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (expert < c.first_expert || expert >= c.end_expert) return;
  const int64_t local = expert - p.first_expert;
  const Bf16x8* x = reinterpret_cast<const Bf16x8*>(p.x);
  const int chunks = p.hidden / 8;
  const int first = (blockIdx.x * kExpertWarps + warp) * kRowFeatures;
#pragma unroll 1
  for (int j = first; j < min(first + kRowFeatures, p.ff); ++j) {
    const Bf16x8* gate = reinterpret_cast<const Bf16x8*>(p.gate_up + (local * 2 * p.ff + j) * p.hidden);
    const Bf16x8* up = reinterpret_cast<const Bf16x8*>(p.gate_up + (local * 2 * p.ff + p.ff + j) * p.hidden);
    float g = 0.0f, u = 0.0f;
    for (int base = lane; base < chunks; base += 32 * kRowLoads) {
      Bf16x8 wg[kRowLoads], wu[kRowLoads];
#pragma unroll
      for (int l = 0; l < kRowLoads; ++l)
        if (base + 32 * l < chunks) {
          wg[l] = gate[base + 32 * l];
          wu[l] = up[base + 32 * l];
        }
#pragma unroll
      for (int l = 0; l < kRowLoads; ++l) {
        if (base + 32 * l >= chunks) break;
        const Bf16x8 xv = x[base + 32 * l];
        g += dot8(wg[l], xv);
        u += dot8(wu[l], xv);
      }
    }
    g = warp_sum(g);
    u = warp_sum(u);
    if (lane == 0) p.activated[int64_t(pair) * p.ff + j] = __float2bfloat16(g / (1.0f + __expf(-g)) * u);
  }
}

// out[d] += Σ_slot weight[slot] · (down_e(slot)[d] · activated[slot]) for the one row, d = this warp's
// feature: the down projections and the combine in one pass, over (slot, chunk) indices so that
// the loads of several slots are in flight together (a slot's row of ff elements is only a few
// loads per lane). Lane i holds slot i's expert and weight, which the others take by shuffle, so
// no weight load waits on a load of its expert id.
//
// The routes are known before this kernel's predecessor (gate/up) starts: gate/up waited for the
// kernel that wrote them before it let this one launch. So the first round of weights loads before
// the wait, while gate/up still runs; only the activations wait (3.895 to 3.878 ms a token alone,
// same shape and GPU). The routes are read from L2 (__ldcg), where their writer's completion put
// them, not from an L1 line an earlier layer left.
struct DownRound {
  Bf16x8 w[kCombineRowLoads];
  float scale[kCombineRowLoads];  // the slot's weight; 0 past the end or for another rank's expert
  int slot[kCombineRowLoads], chunk[kCombineRowLoads];
};

__device__ __forceinline__ void load_down_round(const ExpertMlpParams& p, const ExpertCombineParams& c, int d,
                                                int base, int lane_expert, float lane_weight, DownRound& round) {
  const int lane = threadIdx.x % 32, chunks = p.ff / 8, total = p.top_k * chunks;
#pragma unroll
  for (int l = 0; l < kCombineRowLoads; ++l) {
    const int index = base + 32 * l + lane, slot = min(index / chunks, p.top_k - 1), chunk = index - slot * chunks;
    const int expert = __shfl_sync(0xffffffffu, lane_expert, slot);
    const float weight = __shfl_sync(0xffffffffu, lane_weight, slot);
    const bool here = index < total && expert >= c.first_expert && expert < c.end_expert;
    round.scale[l] = here ? weight : 0.0f;
    round.slot[l] = slot;
    round.chunk[l] = chunk;
    if (here) round.w[l] = reinterpret_cast<const Bf16x8*>(p.down + ((expert - p.first_expert) * int64_t(p.hidden) + d) * p.ff)[chunk];
  }
}

__global__ void expert_down_combine_row_kernel(ExpertMlpParams p, ExpertCombineParams c) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int d = blockIdx.x * kExpertWarps + warp;
  if (d >= p.hidden) return;
  const int lane_expert = lane < p.top_k ? __ldcg(c.experts + lane) : -1;
  const float lane_weight = lane < p.top_k ? __ldcg(c.weights + lane) : 0.0f;
  const int total = p.top_k * (p.ff / 8);
  DownRound round;
  load_down_round(p, c, d, 0, lane_expert, lane_weight, round);
  wait_for_predecessor();
  allow_successor();
  float sum = 0.0f;
  for (int base = 0;;) {
    Bf16x8 h[kCombineRowLoads];
#pragma unroll
    for (int l = 0; l < kCombineRowLoads; ++l)
      if (round.scale[l] != 0.0f)
        h[l] = reinterpret_cast<const Bf16x8*>(p.activated + int64_t(round.slot[l]) * p.ff)[round.chunk[l]];
#pragma unroll
    for (int l = 0; l < kCombineRowLoads; ++l)
      if (round.scale[l] != 0.0f) sum += round.scale[l] * dot8(round.w[l], h[l]);
    base += 32 * kCombineRowLoads;
    if (base >= total) break;
    load_down_round(p, c, d, base, lane_expert, lane_weight, round);
  }
  sum = warp_sum(sum);
  if (lane == 0) c.out[d] += sum;
}

// The same for experts so wide that a warp's row takes many rounds (Mixtral's 14,336: 14 rounds of
// 8 loads a lane, where Qwen3's 768 take 3). The kernel above works out each load's slot, expert
// and weight lane by lane, and a warp's loads wait while it does its arithmetic. Here a slot's row
// of activations is cut into groups of 32 chunks (a 16-byte load a lane), and the block first
// writes a table of every group's offsets and scale to shared memory, so that what a load needs
// besides its lane is the same across the warp and costs one shared-memory broadcast; a round
// loads kLongRowLoads groups (running on into the next slot's), and the next round's weights are in
// flight during a round's arithmetic. At 61 registers a multiprocessor holds 4 blocks. The
// Mixtral-8x7B shape went from 7.98 to 7.52 ms a token at batch 1 (H200; 1.31x to 1.24x its floor);
// Qwen3-30B-A3B's rows are faster with the kernel above (H100: 3.50 against 3.72 ms), whose first
// round of 8 loads is a third of a row. Eight loads a round took 80 registers and were slower on
// both shapes.
// The table and the first round load before the wait, for the reason given above.
constexpr int kLongRowLoads = 4;
constexpr int kLongRowRounds = 3;  // a row longer than this many of the kernel above's rounds takes this one

struct DownGroup {
  int64_t weights;  // the group's first chunk in its expert's down row 0, in 16-byte chunks
  int activations;  // the group's first chunk in activated
  int lanes;        // lanes with a chunk: 32, fewer in a slot's last group, 0 for another rank's expert
  float scale;      // the slot's routing weight
};

__host__ __device__ inline int down_groups_per_slot(int ff) { return (ff / 8 + 31) / 32; }

__device__ __forceinline__ void load_down_weights(const DownGroup* groups, int total, const Bf16x8* row, int base,
                                                  Bf16x8 (&w)[kLongRowLoads]) {
  const int lane = threadIdx.x % 32;
#pragma unroll
  for (int l = 0; l < kLongRowLoads; ++l) {
    if (base + l >= total) break;
    const DownGroup& group = groups[base + l];
    if (lane < group.lanes) w[l] = row[group.weights + lane];
  }
}

__device__ __forceinline__ float down_round_sum(const DownGroup* groups, int total, const Bf16x8* activated, int base,
                                                const Bf16x8 (&w)[kLongRowLoads]) {
  const int lane = threadIdx.x % 32;
  Bf16x8 h[kLongRowLoads];
#pragma unroll
  for (int l = 0; l < kLongRowLoads; ++l) {
    if (base + l >= total) break;
    const DownGroup& group = groups[base + l];
    if (lane < group.lanes) h[l] = activated[group.activations + lane];
  }
  float sum = 0.0f;
#pragma unroll
  for (int l = 0; l < kLongRowLoads; ++l) {
    if (base + l >= total) break;
    const DownGroup& group = groups[base + l];
    if (lane < group.lanes) sum += group.scale * dot8(w[l], h[l]);
  }
  return sum;
}

__global__ void expert_down_combine_long_row_kernel(ExpertMlpParams p, ExpertCombineParams c) {
  extern __shared__ DownGroup groups[];
  const int chunks = p.ff / 8, per_slot = down_groups_per_slot(p.ff), total = p.top_k * per_slot;
  for (int i = threadIdx.x; i < total; i += blockDim.x) {
    const int slot = i / per_slot, first_chunk = (i - slot * per_slot) * 32;
    const int expert = __ldcg(c.experts + slot);
    const bool here = expert >= c.first_expert && expert < c.end_expert;
    groups[i] = DownGroup{here ? (expert - p.first_expert) * int64_t(p.hidden) * chunks + first_chunk : 0,
                          slot * chunks + first_chunk, here ? min(32, chunks - first_chunk) : 0,
                          __ldcg(c.weights + slot)};
  }
  __syncthreads();
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int d = blockIdx.x * kExpertWarps + warp;
  if (d >= p.hidden) return;
  const Bf16x8* row = reinterpret_cast<const Bf16x8*>(p.down) + int64_t(d) * chunks;
  const Bf16x8* activated = reinterpret_cast<const Bf16x8*>(p.activated);
  Bf16x8 w[kLongRowLoads];
  load_down_weights(groups, total, row, 0, w);
  wait_for_predecessor();
  allow_successor();
  float sum = 0.0f;
  for (int base = 0; base < total; base += kLongRowLoads) {
    Bf16x8 next[kLongRowLoads];
    load_down_weights(groups, total, row, base + kLongRowLoads, next);
    sum += down_round_sum(groups, total, activated, base, w);
#pragma unroll
    for (int l = 0; l < kLongRowLoads; ++l) w[l] = next[l];
  }
  sum = warp_sum(sum);
  if (lane == 0) c.out[d] += sum;
}

// ---------------------------------------------------------------------------------------------
// Batches: tensor-core tiles. A warp computes 16 features of one expert for 8 of its pairs with
// mma.m16n8k16 (features as the A rows, pairs as the B columns), so its arithmetic is a few
// instructions per 16-byte load however many pairs share the weights. Their first form (a warp
// over both gate and up, four steps in flight) read at 1.85 TB/s (gate/up) and 2.2 TB/s (down)
// under Nsight Compute, batch 16 on the Qwen3-30B-A3B shape, H100: 23.3 ms a step. With a warp per
// matrix and eight steps in flight they read at 2.8 and 2.55 TB/s: 17.8 ms (1.33x the floor).
//
// Each lane loads 8 consecutive elements of a 32-element block (lane % 4 picks which) from two
// weight rows (lane / 4 and lane / 4 + 8) and from one pair's input row (lane / 4): 16-byte loads
// that feed two mmas. That gives the mma a permuted k (logical 2t + j is element 8t + j of the
// block, 2t + 8 + j is 8t + 2 + j, the second mma the next four), the same for A and B, which a
// dot product does not see.

constexpr int kTileFeatures = 16;  // the mma's m
constexpr int kTilePairs = kExpertPairsPerPass;  // the mma's n
constexpr int kTileBlockK = 32;    // elements of a row the warp covers per step: 4 lanes x 8
constexpr int kTileSteps = 8;      // steps whose loads are in flight together
constexpr int kTileWarps = 4;
// Blocks a multiprocessor must hold, which lets ptxas keep every load of a round in registers (124
// of them): without a bound it took 56 and interleaved loads with mmas (batch 16 22.5 ms a step on
// the Qwen3-30B-A3B shape, H100), at 5 blocks it spilled a little (18.2 ms), at 4 17.8 ms.
constexpr int kTileBlocksPerSm = 4;

__device__ __forceinline__ void mma_bf16(float (&c)[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3, uint32_t b0,
                                         uint32_t b1) {
  asm(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

// Both mmas of a step: c += A (rows lo, hi) · B (the pair row) over the 32-element block.
__device__ __forceinline__ void mma_block(float (&c)[4], const uint4& lo, const uint4& hi, const uint4& b) {
  mma_bf16(c, lo.x, hi.x, lo.y, hi.y, b.x, b.y);
  mma_bf16(c, lo.z, hi.z, lo.w, hi.w, b.z, b.w);
}

// The 16 bytes a lane takes of a row at element k, zeros past the row's end.
__device__ __forceinline__ uint4 load_chunk(const __nv_bfloat16* row, int k, int length) {
  return k < length ? *reinterpret_cast<const uint4*>(row + k) : make_uint4(0, 0, 0, 0);
}

// c (features lo/hi, this lane's two pairs) accumulates Σ_k w[feature][k] · in[pair][k] over
// k < length. Whole rounds of kTileSteps steps load without predicates, so that all their loads are
// in flight at once; the rest of the row goes step by step. Every pointer is a real row: a tile's
// missing features and pairs read another row, and their results are not stored.
__device__ __forceinline__ void tile_dot(const __nv_bfloat16* lo, const __nv_bfloat16* hi, const __nv_bfloat16* in,
                                         int length, float (&c)[4]) {
  const int offset = (threadIdx.x % 4) * 8;
  constexpr int kRound = kTileBlockK * kTileSteps;
  const int whole = length / kRound * kRound;
  for (int k0 = offset; k0 < whole; k0 += kRound) {
    uint4 w_lo[kTileSteps], w_hi[kTileSteps], b[kTileSteps];
#pragma unroll
    for (int s = 0; s < kTileSteps; ++s) {
      const int k = k0 + s * kTileBlockK;
      w_lo[s] = *reinterpret_cast<const uint4*>(lo + k);
      w_hi[s] = *reinterpret_cast<const uint4*>(hi + k);
      b[s] = *reinterpret_cast<const uint4*>(in + k);
    }
#pragma unroll
    for (int s = 0; s < kTileSteps; ++s) mma_block(c, w_lo[s], w_hi[s], b[s]);
  }
  for (int k0 = whole; k0 < length; k0 += kTileBlockK) {
    const int k = k0 + offset;
    mma_block(c, load_chunk(lo, k, length), load_chunk(hi, k, length), load_chunk(in, k, length));
  }
}

// A warp's tile of a batch's kernels: the block row's chosen expert (as this rank's index), its pairs
// [begin, end), and the warp's first output feature.
struct ExpertTile {
  int64_t local;
  int begin, end, first_feature;
};

// False when the block row has no chosen expert (the same for every warp of the block).
__device__ __forceinline__ bool expert_tile(const ExpertMlpParams& p, int warp_tile, ExpertTile& tile) {
  const int expert = p.active[blockIdx.y];
  if (expert < 0) return false;
  tile.local = expert - p.first_expert;
  tile.begin = p.offsets[expert];
  tile.end = p.offsets[expert + 1];
  tile.first_feature = warp_tile * kTileFeatures;
  return true;
}

// activated[pair, j] = silu(gate_e[j] · x[row]) * (up_e[j] · x[row]). Two warps take 16 features,
// one the gate rows and the other the up rows, which meet in shared memory. One matrix a warp, not
// both, doubles a step's warps: batch 16 on the Qwen3-30B-A3B shape chooses about 81 experts a
// layer, whose warps made only 1.5 waves with both matrices each, and the half-empty second wave
// held the kernel to 1.85 TB/s on an H100, where the same loads stream at 2.8 TB/s in many waves
// (bench/read_pattern_probe.cu).
constexpr int kGateUpBlockFeatures = kTileWarps / 2 * kTileFeatures;

__global__ void __launch_bounds__(kTileWarps * 32, kTileBlocksPerSm) expert_gate_up_tile_kernel(ExpertMlpParams p) {
  wait_for_predecessor();
  allow_successor();
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, group = lane / 4, column = (lane % 4) * 2;
  const int feature_tile = warp / 2;
  const bool up = warp % 2 == 1;
  ExpertTile tile;
  if (!expert_tile(p, blockIdx.x * (kTileWarps / 2) + feature_tile, tile)) return;
  // Every warp stays to the end for the block's barriers: features past ff read the last row.
  const int j0 = tile.first_feature;
  const __nv_bfloat16* matrix = p.gate_up + (tile.local * 2 + (up ? 1 : 0)) * p.ff * p.hidden;
  const auto feature_row = [&](int j) { return matrix + int64_t(min(j, p.ff - 1)) * p.hidden; };
  const __nv_bfloat16 *lo = feature_row(j0 + group), *hi = feature_row(j0 + group + 8);
  __shared__ float up_sums[kTileWarps / 2][32][4];
  for (int first = tile.begin; first < tile.end; first += kTilePairs) {
    const int n = min(kTilePairs, tile.end - first);
    const __nv_bfloat16* in = p.x + int64_t(p.pairs[first + min(group, n - 1)] / p.top_k) * p.hidden;
    float c[4] = {};
    tile_dot(lo, hi, in, p.hidden, c);
    if (up) {
#pragma unroll
      for (int i = 0; i < 4; ++i) up_sums[feature_tile][lane][i] = c[i];
    }
    __syncthreads();
    if (!up) {
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const int j = j0 + group + (i / 2) * 8, pair_slot = column + i % 2;
        if (j >= p.ff || pair_slot >= n) continue;
        const float g = c[i], u = up_sums[feature_tile][lane][i];
        p.activated[int64_t(p.pairs[first + pair_slot]) * p.ff + j] = __float2bfloat16(g / (1.0f + __expf(-g)) * u);
      }
    }
    __syncthreads();  // before the next pass's up warps write again
  }
}

// expert_out[pair, d] = down_e[d] · activated[pair] for the warp's 16 features d.
__global__ void __launch_bounds__(kTileWarps * 32, kTileBlocksPerSm) expert_down_tile_kernel(ExpertMlpParams p) {
  wait_for_predecessor();
  allow_successor();
  ExpertTile tile;
  if (!expert_tile(p, blockIdx.x * kTileWarps + threadIdx.x / 32, tile) || tile.first_feature >= p.hidden) return;
  const int lane = threadIdx.x % 32, group = lane / 4, column = (lane % 4) * 2;
  const int d0 = tile.first_feature, begin = tile.begin, end = tile.end;
  const __nv_bfloat16* down = p.down + tile.local * p.hidden * p.ff;
  const auto feature_row = [&](int d) { return down + int64_t(min(d, p.hidden - 1)) * p.ff; };
  const __nv_bfloat16 *lo = feature_row(d0 + group), *hi = feature_row(d0 + group + 8);
  for (int first = begin; first < end; first += kTilePairs) {
    const int n = min(kTilePairs, end - first);
    const __nv_bfloat16* in = p.activated + int64_t(p.pairs[first + min(group, n - 1)]) * p.ff;
    float c[4] = {};
    tile_dot(lo, hi, in, p.ff, c);
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int d = d0 + group + (i / 2) * 8, pair_slot = column + i % 2;
      if (d < p.hidden && pair_slot < n) p.expert_out[int64_t(p.pairs[first + pair_slot]) * p.hidden + d] = c[i];
    }
  }
}

// Both combines take a block per (row, kCombineThreads features): a decode step has few rows, and a
// block per row left most multiprocessors idle (16 blocks took 20 us a layer at batch 16, H200).
__global__ void expert_combine_kernel(ExpertCombineParams p) {
  wait_for_predecessor();
  allow_successor();
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
  wait_for_predecessor();
  allow_successor();
  const int i = blockIdx.x;
  const int pair = p.pairs[i];
  if (threadIdx.x == 0) p.positions[pair] = i;
  const uint4* from = reinterpret_cast<const uint4*>(p.x + int64_t(pair / p.top_k) * p.hidden);
  uint4* to = reinterpret_cast<uint4*>(p.rows + int64_t(i) * p.hidden);
  for (int c = threadIdx.x; c < p.hidden / 8; c += blockDim.x) to[c] = from[c];
}

__global__ void grouped_expert_combine_kernel(GroupedExpertCombineParams p) {
  wait_for_predecessor();
  allow_successor();
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
  wait_for_predecessor();
  allow_successor();
  const int64_t row = blockIdx.x;
  float dot = 0.0f;
  for (int d = threadIdx.x; d < p.hidden; d += blockDim.x)
    dot += __bfloat162float(p.gate[d]) * __bfloat162float(p.x[row * p.hidden + d]);
  const float scale = 1.0f / (1.0f + __expf(-block_sum(dot)));
  for (int d = threadIdx.x; d < p.hidden; d += blockDim.x)
    p.out[row * p.hidden + d] += scale * __bfloat162float(p.shared_out[row * p.hidden + d]);
}

__global__ void add_f32_kernel(float* out, const float* delta, int64_t count) {
  wait_for_predecessor();
  allow_successor();
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < count; i += int64_t(gridDim.x) * blockDim.x)
    out[i] += delta[i];
}

// ---------------------------------------------------------------------------------------------
// launchers

void check_expert_operands(const ExpertMlpParams& params) {
  if (params.hidden % 8 != 0) throw_unsupported("experts whose hidden size is not a multiple of 8", params.hidden);
  if (params.ff < 8 || params.ff % 8 != 0) throw_unsupported("experts whose width is not a positive multiple of 8", params.ff);
  if (!is_aligned(params.x, 16) || !is_aligned(params.gate_up, 16) || !is_aligned(params.down, 16) ||
      !is_aligned(params.activated, 16))
    throw_unsupported("expert buffers not 16-byte aligned", 0);
  if (params.first_expert < 0 || params.n_local_experts < 0 ||
      params.first_expert + params.n_local_experts > params.n_experts)
    throw_unsupported("a rank's experts beyond the layer's", params.first_expert + params.n_local_experts);
}

namespace {

// The combine's expert range is the one whose weights the kernels hold: one row's kernels index the
// weights by it.
void check_same_experts(const ExpertMlpParams& params, const ExpertCombineParams& combine) {
  if (combine.first_expert != params.first_expert || combine.end_expert != params.first_expert + params.n_local_experts)
    throw_unsupported("a combine over other experts than the rank holds", combine.end_expert);
}

}  // namespace

// One row's grid has a block row per slot; a batch's, a block row per possible chosen expert (the
// rest of the rows find -1 in `active` and return).
void launch_routed_experts(const ExpertMlpParams& params, const ExpertCombineParams& combine, cudaStream_t stream) {
  check_expert_operands(params);
  check_same_experts(params, combine);
  if (params.n_rows == 0 || params.n_local_experts == 0) return;
  if (params.n_rows == 1) {
    // Lane i of the down-and-combine kernel holds slot i.
    if (params.top_k > 32) throw_unsupported("one row routed to more than 32 experts", params.top_k);
    constexpr int kBlockFeatures = kExpertWarps * kRowFeatures;
    const dim3 gate_up_grid((params.ff + kBlockFeatures - 1) / kBlockFeatures, params.top_k);
    launch_pdl(expert_gate_up_row_kernel, gate_up_grid, kExpertWarps * 32, 0, stream, params, combine);
    const int down_blocks = (params.hidden + kExpertWarps - 1) / kExpertWarps;
    if (params.top_k * params.ff / 8 <= kLongRowRounds * 32 * kCombineRowLoads) {
      launch_pdl(expert_down_combine_row_kernel, down_blocks, kExpertWarps * 32, 0, stream, params, combine);
      return;
    }
    const size_t table_bytes = size_t(params.top_k) * down_groups_per_slot(params.ff) * sizeof(DownGroup);
    // The dynamic shared memory a block may take without asking: 32 slots of 14,336-wide experts need 43 KB.
    if (table_bytes > 48 * 1024)
      throw_unsupported("one row routed to more expert width than a block's table holds", params.top_k * params.ff);
    launch_pdl(expert_down_combine_long_row_kernel, down_blocks, kExpertWarps * 32, table_bytes, stream, params,
               combine);
    return;
  }
  if (params.active == nullptr) throw_unsupported("a batch's expert kernels without the list of chosen experts", 0);
  const int chosen = std::min(params.n_local_experts, params.n_rows * params.top_k);
  const dim3 gate_up_grid((params.ff + kGateUpBlockFeatures - 1) / kGateUpBlockFeatures, chosen);
  launch_pdl(expert_gate_up_tile_kernel, gate_up_grid, kTileWarps * 32, 0, stream, params);
  constexpr int kDownBlockFeatures = kTileWarps * kTileFeatures;
  const dim3 down_grid((params.hidden + kDownBlockFeatures - 1) / kDownBlockFeatures, chosen);
  launch_pdl(expert_down_tile_kernel, down_grid, kTileWarps * 32, 0, stream, params);
  launch_pdl(expert_combine_kernel, dim3(params.n_rows, (params.hidden + kCombineThreads - 1) / kCombineThreads),
             kCombineThreads, 0, stream, combine);
}

void launch_gather_expert_rows(const GatherExpertRowsParams& params, cudaStream_t stream) {
  if (params.hidden % 8 != 0) throw_unsupported("experts whose hidden size is not a multiple of 8", params.hidden);
  if (params.n_grouped == 0) return;
  launch_pdl(gather_expert_rows_kernel, params.n_grouped, 128, 0, stream, params);
  CUDA_CHECK_LAUNCH();
}

void launch_grouped_expert_combine(const GroupedExpertCombineParams& params, cudaStream_t stream) {
  if (params.first_expert > params.end_expert) throw_unsupported("a rank's expert range ending before it starts", params.end_expert);
  if (params.n_rows == 0 || params.hidden == 0) return;
  launch_pdl(grouped_expert_combine_kernel, dim3(params.n_rows, (params.hidden + kCombineThreads - 1) / kCombineThreads),
             kCombineThreads, 0, stream, params);
  CUDA_CHECK_LAUNCH();
}

void launch_shared_expert_add(const SharedExpertAddParams& params, cudaStream_t stream) {
  if (params.n_rows == 0) return;
  launch_pdl(shared_expert_add_kernel, params.n_rows, 256, 0, stream, params);
  CUDA_CHECK_LAUNCH();
}

void launch_add_f32(float* out, const float* delta, int64_t count, cudaStream_t stream) {
  if (count == 0) return;
  const int blocks = int(std::min<int64_t>((count + 255) / 256, 1024));
  launch_pdl(add_f32_kernel, blocks, 256, 0, stream, out, delta, count);
  CUDA_CHECK_LAUNCH();
}

}  // namespace shardlm::cuda
