// Flash attention (forward) on tensor cores, in the manner of FlashAttention-2: a block of 4 warps
// owns 64 query rows of one head and walks the keys in tiles of 64, each tile's keys and values
// copied into shared memory (cp.async) while the warps work on the previous tile. Each warp keeps
// its 16 rows' queries, scores and output in registers, as MMA fragments (ops/cuda/mma.cuh): S =
// Q·Kᵀ, the causal/sliding mask and the online softmax on S's fragment, whose layout is that of the
// A fragment P·V takes, and O += P·V. The first kernel (WMMA tiles, with the scores and the output
// round-tripped through shared memory every tile, 113 KB of it a block) took 110 us a layer for a
// serving pass of 512 prompt rows on an H200: about 18 TFLOP/s.
#include <algorithm>
#include <cmath>

#include "core/cuda/cuda_check.h"
#include "ops/cuda/cp_async.cuh"
#include "ops/cuda/flash_attention.h"
#include "ops/cuda/mma.cuh"
#include "ops/cuda/pdl.cuh"

namespace shardlm::cuda {

// ---------------------------------------------------------------------------------------------
// kernels

constexpr int kFlashRows = kPrefillTileRows;  // query rows per block (16 per warp)
constexpr int kFlashKeys = 64;                // keys per shared-memory tile
constexpr int kFlashThreads = 128;

template <int kHeadDim>
struct FlashLayout {
  static constexpr int kLd = kHeadDim + 8;  // bf16 elements a row: ldmatrix's 8 rows fall in distinct banks
  static constexpr int kVectors = kHeadDim / 8;  // 16-byte vectors a row
  static constexpr size_t kTileBytes = size_t(kFlashKeys) * kLd * 2;
  // Q, then two buffers of K and two of V.
  static constexpr size_t kTotal = size_t(kFlashRows) * kLd * 2 + 4 * kTileBytes;
};

template <int kHeadDim>
__global__ void __launch_bounds__(kFlashThreads) flash_attention_kernel(PrefillAttentionParams p) {
  using L = FlashLayout<kHeadDim>;
  constexpr int kDSteps = kHeadDim / 16;     // k-steps of Q·Kᵀ
  constexpr int kOTiles = kHeadDim / 8;      // n-tiles of the output
  constexpr int kSTiles = kFlashKeys / 8;    // n-tiles of a key tile's scores
  extern __shared__ __align__(128) unsigned char shared[];
  __nv_bfloat16* q_tile = reinterpret_cast<__nv_bfloat16*>(shared);
  __nv_bfloat16* k_tiles = q_tile + kFlashRows * L::kLd;   // [2][kFlashKeys][kLd]
  __nv_bfloat16* v_tiles = k_tiles + 2 * kFlashKeys * L::kLd;

  // The tiles are among the step's inputs, copied before its first kernel: read before the wait
  // (ops/cuda/pdl.cuh), as the decode attention kernel reads its positions.
  const PrefillTile tile = p.tiles[blockIdx.x];
  const int head = blockIdx.y;
  const int kv_head = head / (p.n_heads / p.n_kv_heads);
  const int q_stride = p.n_heads * kHeadDim, kv_stride = p.n_kv_heads * kHeadDim;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int g = lane / 4, t = lane % 4;

  const int last_key = tile.first_position + tile.n_rows - 1;
  int first_key = 0;
  if (p.sliding_window > 0) first_key = max(0, tile.first_position - p.sliding_window + 1);
  // This split's share of the key tiles (all of them without splits).
  const int first_tile = first_key / kFlashKeys, n_tiles = last_key / kFlashKeys - first_tile + 1;
  const int tiles_per_split = (n_tiles + p.n_key_splits - 1) / p.n_key_splits;
  const int split = blockIdx.z;
  const int split_begin = (first_tile + split * tiles_per_split) * kFlashKeys;
  const int split_end = min(split_begin + tiles_per_split * kFlashKeys - 1, last_key);

  // A thread copies the same 16-byte column of kFlashKeys / (kFlashThreads / kVectors) keys of a tile.
  constexpr int kKeysPerPass = kFlashThreads / L::kVectors;
  const int copy_vector = threadIdx.x % L::kVectors, copy_key = threadIdx.x / L::kVectors;
  const auto load_tile = [&](int tile_start, int buffer) {
#pragma unroll
    for (int i = 0; i < kFlashKeys / kKeysPerPass; ++i) {
      const int key = copy_key + i * kKeysPerPass;
      const bool valid = tile_start + key <= split_end;
      const int64_t offset = p.kv.row(tile.slot, valid ? tile_start + key : split_begin) * kv_stride +
                             kv_head * kHeadDim + copy_vector * 8;
      const int at = (buffer * kFlashKeys + key) * L::kLd + copy_vector * 8;
      cp_async_16(shared_address(k_tiles + at), p.k_cache + offset, valid);
      cp_async_16(shared_address(v_tiles + at), p.v_cache + offset, valid);
    }
  };

  wait_for_predecessor();
  allow_successor();
  // Q (zeros past the tile's rows) and the first tile of keys, as one group of copies.
  for (int index = threadIdx.x; index < kFlashRows * L::kVectors; index += kFlashThreads) {
    const int row = index / L::kVectors, vector = index % L::kVectors;
    const bool valid = row < tile.n_rows;
    cp_async_16(shared_address(q_tile + row * L::kLd + vector * 8),
                p.q + int64_t(tile.row_begin + (valid ? row : 0)) * q_stride + head * kHeadDim + vector * 8, valid);
  }
  if (split_begin <= split_end) load_tile(split_begin, 0);
  cp_async_commit();

  // The warp's rows g and g + 8: their positions, running maxima and (this lane's part of the) sums.
  const int row_low = warp * 16 + g, row_high = row_low + 8;
  const int position_low = tile.first_position + row_low, position_high = tile.first_position + row_high;
  float running_max[2] = {-INFINITY, -INFINITY}, running_sum[2] = {0.0f, 0.0f};
  float o[kOTiles][4] = {};
  uint32_t q_fragment[kDSteps][4];

  int buffer = 0;
  for (int tile_start = split_begin; tile_start <= split_end; tile_start += kFlashKeys, buffer ^= 1) {
    cp_async_wait<0>();
    __syncthreads();  // this tile has landed, and every warp is done with the buffer loaded next
    if (tile_start == split_begin) {
#pragma unroll
      for (int d = 0; d < kDSteps; ++d) {
        const int m = lane / 8, r = lane % 8;
        ldmatrix_x4(q_fragment[d], shared_address(q_tile + (warp * 16 + r + 8 * (m % 2)) * L::kLd + d * 16 + 8 * (m / 2)));
      }
    }
    if (tile_start + kFlashKeys <= split_end) load_tile(tile_start + kFlashKeys, buffer ^ 1);
    cp_async_commit();
    const __nv_bfloat16* keys = k_tiles + buffer * kFlashKeys * L::kLd;
    const __nv_bfloat16* values = v_tiles + buffer * kFlashKeys * L::kLd;

    // S = Q · Kᵀ: n-tile j holds keys 8j .. 8j + 7; ldmatrix takes two k-steps of one n-tile at once.
    float s[kSTiles][4] = {};
#pragma unroll
    for (int j = 0; j < kSTiles; ++j)
#pragma unroll
      for (int d = 0; d < kDSteps; d += 2) {
        uint32_t b[4];
        ldmatrix_x4(b, shared_address(keys + (8 * j + lane % 8) * L::kLd + d * 16 + 8 * (lane / 8)));
        mma_bf16_16816(s[j], q_fragment[d], b[0], b[1]);
        mma_bf16_16816(s[j], q_fragment[d + 1], b[2], b[3]);
      }

    // Mask (causal, the sliding window, the split's end) and the online softmax, rows g and g + 8.
    // A tile whose every key every row of the warp sees (all but the diagonal and the edges) needs
    // no mask.
    const int warp_position = tile.first_position + warp * 16;
    const bool unmasked = tile_start + kFlashKeys - 1 <= min(warp_position, split_end) &&
                          (p.sliding_window <= 0 || tile_start > warp_position + 15 - p.sliding_window);
    float tile_max[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int j = 0; j < kSTiles; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int key = tile_start + 8 * j + 2 * t + (e & 1);
        const int position = e < 2 ? position_low : position_high;
        const bool visible = unmasked || (key <= position && key <= split_end &&
                                          (p.sliding_window <= 0 || key > position - p.sliding_window));
        s[j][e] = visible ? s[j][e] * p.scale : -INFINITY;
        tile_max[e / 2] = fmaxf(tile_max[e / 2], s[j][e]);
      }
    float base[2], correction[2];
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      tile_max[h] = fmaxf(tile_max[h], __shfl_xor_sync(0xffffffffu, tile_max[h], 1));
      tile_max[h] = fmaxf(tile_max[h], __shfl_xor_sync(0xffffffffu, tile_max[h], 2));
      const float new_max = fmaxf(running_max[h], tile_max[h]);
      // A row that has seen no visible key yet keeps -inf as its max, and 0 weights: exp(-inf - 0).
      base[h] = new_max == -INFINITY ? 0.0f : new_max;
      correction[h] = __expf(running_max[h] - base[h]);
      running_max[h] = new_max;
      running_sum[h] *= correction[h];
    }
#pragma unroll
    for (int n = 0; n < kOTiles; ++n)
#pragma unroll
      for (int e = 0; e < 4; ++e) o[n][e] *= correction[e / 2];

    // O += P · V: the scores of n-tiles 2k and 2k + 1 are the A fragment of k-step k; ldmatrix.trans
    // gives V's B fragments for two n-tiles of the output at once.
#pragma unroll
    for (int k = 0; k < kSTiles / 2; ++k) {
      float weight[8];
#pragma unroll
      for (int e = 0; e < 8; ++e) {
        weight[e] = __expf(s[2 * k + e / 4][e % 4] - base[(e % 4) / 2]);
        running_sum[(e % 4) / 2] += weight[e];
      }
      const uint32_t a[4] = {pack_bf16(weight[0], weight[1]), pack_bf16(weight[2], weight[3]),
                             pack_bf16(weight[4], weight[5]), pack_bf16(weight[6], weight[7])};
#pragma unroll
      for (int n = 0; n < kOTiles; n += 2) {
        const int m = lane / 8, r = lane % 8;
        uint32_t b[4];
        ldmatrix_x4_trans(b, shared_address(values + (16 * k + r + 8 * (m % 2)) * L::kLd + n * 8 + 8 * (m / 2)));
        mma_bf16_16816(o[n], a, b[0], b[1]);
        mma_bf16_16816(o[n + 1], a, b[2], b[3]);
      }
    }
  }
  cp_async_wait<0>();  // no copy outlives the block, even one the loop did not wait for

  // Each lane summed its own columns: the row's sum is over the lanes of its quad.
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    running_sum[h] += __shfl_xor_sync(0xffffffffu, running_sum[h], 1);
    running_sum[h] += __shfl_xor_sync(0xffffffffu, running_sum[h], 2);
  }
  const int rows[2] = {row_low, row_high};
  if (p.n_key_splits > 1) {
    // The split's unnormalised state of each row: its max, its sum and its weighted values.
    const int64_t state_floats = kHeadDim + 2;
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      if (rows[h] >= tile.n_rows) continue;
      float* state = p.partial + (((int64_t(split) * p.n_tiles + blockIdx.x) * kFlashRows + rows[h]) * p.n_heads + head) *
                                     state_floats;
      if (t == 0) {
        state[0] = running_max[h];
        state[1] = running_sum[h];
      }
#pragma unroll
      for (int n = 0; n < kOTiles; ++n) {
        state[2 + 8 * n + 2 * t] = o[n][2 * h];
        state[2 + 8 * n + 2 * t + 1] = o[n][2 * h + 1];
      }
    }
    return;
  }
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    if (rows[h] >= tile.n_rows) continue;
    const float inverse = running_sum[h] > 0.0f ? 1.0f / running_sum[h] : 0.0f;
    __nv_bfloat16* out = p.out + int64_t(tile.row_begin + rows[h]) * q_stride + head * kHeadDim;
#pragma unroll
    for (int n = 0; n < kOTiles; ++n)
      *reinterpret_cast<__nv_bfloat162*>(out + 8 * n + 2 * t) =
          __floats2bfloat162_rn(o[n][2 * h] * inverse, o[n][2 * h + 1] * inverse);
  }
}

// One block per (tile row, head), a thread per element: the splits' states weighted by their maxima.
__global__ void merge_key_splits_kernel(PrefillAttentionParams p) {
  wait_for_predecessor();
  allow_successor();
  const int tile_row = blockIdx.x, head = blockIdx.y, d = threadIdx.x;
  const PrefillTile tile = p.tiles[tile_row / kFlashRows];
  if (tile_row % kFlashRows >= tile.n_rows) return;
  const int row = tile.row_begin + tile_row % kFlashRows;
  const int64_t state_floats = p.head_dim + 2;
  const int64_t split_stride = int64_t(p.n_tiles) * kFlashRows * p.n_heads * state_floats;
  const float* states = p.partial + (int64_t(tile_row) * p.n_heads + head) * state_floats;
  float merged_max = -INFINITY;
  for (int s = 0; s < p.n_key_splits; ++s) merged_max = fmaxf(merged_max, states[s * split_stride]);
  float sum = 0.0f, value = 0.0f;
  for (int s = 0; s < p.n_key_splits; ++s) {
    const float* state = states + s * split_stride;
    const float weight = state[0] == -INFINITY ? 0.0f : __expf(state[0] - merged_max);
    sum += state[1] * weight;
    value += state[2 + d] * weight;
  }
  p.out[(int64_t(row) * p.n_heads + head) * p.head_dim + d] = __float2bfloat16(sum > 0.0f ? value / sum : 0.0f);
}

template <int kHeadDim>
void launch_flash(const PrefillAttentionParams& params, cudaStream_t stream) {
  constexpr size_t kShared = FlashLayout<kHeadDim>::kTotal;
  // Raising the dynamic shared-memory limit is per function; doing it every launch is cheap.
  CUDA_CHECK(cudaFuncSetAttribute(flash_attention_kernel<kHeadDim>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                  int(kShared)));
  const dim3 grid(params.n_tiles, params.n_heads, params.n_key_splits);
  launch_pdl(flash_attention_kernel<kHeadDim>, grid, kFlashThreads, kShared, stream, params);
  if (params.n_key_splits > 1)
    launch_pdl(merge_key_splits_kernel, dim3(params.n_tiles * kFlashRows, params.n_heads), kHeadDim, 0, stream, params);
}

// Blocks that fill an H200 (132 multiprocessors) about twice, as the split kernel sizes its waves.
constexpr int kFlashTargetBlocks = 264;
constexpr int kFlashMaxKeySplits = 16;

// ---------------------------------------------------------------------------------------------
// launchers

bool prefill_attention_supports(int head_dim) { return head_dim == 64 || head_dim == 128; }

void append_prefill_tiles(std::vector<PrefillTile>& tiles, int row_begin, int n_rows, int slot, int first_position) {
  for (int offset = 0; offset < n_rows; offset += kFlashRows)
    tiles.push_back({row_begin + offset, std::min(kFlashRows, n_rows - offset), slot, first_position + offset});
}

int prefill_attention_key_splits(int n_tiles, int n_heads, int64_t n_keys) {
  const int64_t blocks = int64_t(n_tiles) * n_heads;
  // At least two tiles of keys a split, so that a split's own work outweighs the merge.
  const int64_t most_by_keys = std::max<int64_t>(1, n_keys / (2 * kFlashKeys));
  return int(std::clamp<int64_t>(kFlashTargetBlocks / std::max<int64_t>(blocks, 1), 1,
                                  std::min<int64_t>(kFlashMaxKeySplits, most_by_keys)));
}

// Splits above 1 only while (64-row tiles x heads) < kFlashTargetBlocks, so splits x tiles x heads
// stays below kFlashTargetBlocks, and rows <= 64 x tiles.
int64_t prefill_attention_max_partial_floats(int head_dim) {
  return int64_t(kFlashTargetBlocks) * kFlashRows * (head_dim + 2);
}

void launch_prefill_attention(const PrefillAttentionParams& params, cudaStream_t stream) {
  if (params.n_tiles == 0) return;
  if (params.n_key_splits < 1 || params.n_key_splits > kFlashMaxKeySplits)
    throw_unsupported("prefill attention key splits outside 1..16", params.n_key_splits);
  if (params.head_dim == 64) launch_flash<64>(params, stream);
  else if (params.head_dim == 128) launch_flash<128>(params, stream);
  else throw_unsupported("tensor-core prefill attention head_dim (64 or 128)", params.head_dim);
  CUDA_CHECK_LAUNCH();
}

}  // namespace shardlm::cuda
