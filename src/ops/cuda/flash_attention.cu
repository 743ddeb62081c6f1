// Flash attention (forward) with WMMA bf16 tensor-core tiles. A block of 4 warps owns 64 query rows
// of one head; it walks the keys in tiles of 64 staged in shared memory. Each warp computes its 16
// rows' scores S = Q·Kᵀ on tensor cores, applies the causal/sliding mask and the online softmax
// (two lanes per row), rescales its output rows and accumulates O += P·V on tensor cores. The
// output accumulator lives in shared memory because WMMA fragments cannot be scaled per row.
#include <mma.h>

#include <algorithm>
#include <cmath>

#include "core/cuda/cuda_check.h"
#include "ops/cuda/flash_attention.h"
#include "ops/cuda/pdl.cuh"

namespace shardlm::cuda {

// ---------------------------------------------------------------------------------------------
// kernels

namespace wmma = nvcuda::wmma;

constexpr int kFlashRows = kPrefillTileRows;  // query rows per block (16 per warp)
constexpr int kFlashKeys = 64;   // keys per shared-memory tile
constexpr int kFlashThreads = 128;

template <int kHeadDim>
struct FlashLayout {
  static constexpr int kLdQkv = kHeadDim + 8;   // bf16 elements; padding against bank conflicts
  static constexpr int kLdS = kFlashKeys + 4;   // f32
  static constexpr int kLdP = kFlashKeys + 8;   // bf16
  static constexpr int kLdO = kHeadDim + 4;     // f32
  static constexpr size_t kQBytes = size_t(kFlashRows) * kLdQkv * 2;
  static constexpr size_t kKvBytes = size_t(kFlashKeys) * kLdQkv * 2;
  static constexpr size_t kSBytes = size_t(kFlashRows) * kLdS * 4;
  static constexpr size_t kPBytes = size_t(kFlashRows) * kLdP * 2;
  static constexpr size_t kOBytes = size_t(kFlashRows) * kLdO * 4;
  static constexpr size_t kAlphaBytes = size_t(kFlashRows) * 4;
  static constexpr size_t kTotal = kQBytes + 2 * kKvBytes + kSBytes + kPBytes + kOBytes + kAlphaBytes;
};

template <int kHeadDim>
__global__ void __launch_bounds__(kFlashThreads) flash_attention_kernel(PrefillAttentionParams p) {
  using L = FlashLayout<kHeadDim>;
  extern __shared__ __align__(128) unsigned char shared[];
  __nv_bfloat16* q_tile = reinterpret_cast<__nv_bfloat16*>(shared);
  __nv_bfloat16* k_tile = reinterpret_cast<__nv_bfloat16*>(shared + L::kQBytes);
  __nv_bfloat16* v_tile = reinterpret_cast<__nv_bfloat16*>(shared + L::kQBytes + L::kKvBytes);
  float* s_tile = reinterpret_cast<float*>(shared + L::kQBytes + 2 * L::kKvBytes);
  __nv_bfloat16* p_tile = reinterpret_cast<__nv_bfloat16*>(shared + L::kQBytes + 2 * L::kKvBytes + L::kSBytes);
  float* o_tile = reinterpret_cast<float*>(shared + L::kQBytes + 2 * L::kKvBytes + L::kSBytes + L::kPBytes);
  float* alpha = reinterpret_cast<float*>(shared + L::kQBytes + 2 * L::kKvBytes + L::kSBytes + L::kPBytes + L::kOBytes);

  wait_for_predecessor();
  allow_successor();
  const PrefillTile tile = p.tiles[blockIdx.x];
  const int head = blockIdx.y;
  const int kv_head = head / (p.n_heads / p.n_kv_heads);
  const int first_row = tile.row_begin;
  const int q_stride = p.n_heads * kHeadDim, kv_stride = p.n_kv_heads * kHeadDim;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  constexpr int kVectors = kHeadDim / 8;  // 16-byte vectors per row

  // Stage Q (zero rows past the end) and clear O.
  for (int index = threadIdx.x; index < kFlashRows * kVectors; index += kFlashThreads) {
    const int row = index / kVectors, vector = index % kVectors;
    uint4 value = make_uint4(0, 0, 0, 0);
    if (row < tile.n_rows)
      value = *reinterpret_cast<const uint4*>(p.q + int64_t(first_row + row) * q_stride + head * kHeadDim + vector * 8);
    *reinterpret_cast<uint4*>(q_tile + row * L::kLdQkv + vector * 8) = value;
  }
  for (int index = threadIdx.x; index < kFlashRows * kHeadDim; index += kFlashThreads)
    o_tile[(index / kHeadDim) * L::kLdO + index % kHeadDim] = 0.0f;

  // Each lane pair owns one of the warp's 16 rows: lane/2 is the row, lane%2 the half of the keys.
  const int my_row = warp * 16 + lane / 2;
  const int my_position = tile.first_position + my_row;
  const bool my_row_valid = my_row < tile.n_rows;
  float running_max = -INFINITY, running_sum = 0.0f;

  const int last_key = tile.first_position + tile.n_rows - 1;
  int first_key = 0;
  if (p.sliding_window > 0) first_key = max(0, tile.first_position - p.sliding_window + 1);
  // This split's share of the key tiles (all of them without splits).
  const int first_tile = first_key / kFlashKeys, n_tiles = last_key / kFlashKeys - first_tile + 1;
  const int tiles_per_split = (n_tiles + p.n_key_splits - 1) / p.n_key_splits;
  const int split = blockIdx.z;
  const int split_begin = (first_tile + split * tiles_per_split) * kFlashKeys;
  const int split_end = min(split_begin + tiles_per_split * kFlashKeys - 1, last_key);
  for (int tile_start = split_begin; tile_start <= split_end; tile_start += kFlashKeys) {
    __syncthreads();  // the previous tile's K/V are no longer read
    for (int index = threadIdx.x; index < kFlashKeys * kVectors; index += kFlashThreads) {
      const int key = index / kVectors, vector = index % kVectors;
      uint4 k_value = make_uint4(0, 0, 0, 0), v_value = make_uint4(0, 0, 0, 0);
      if (tile_start + key <= split_end) {
        const int64_t offset = p.kv.row(tile.slot, tile_start + key) * kv_stride + kv_head * kHeadDim + vector * 8;
        k_value = *reinterpret_cast<const uint4*>(p.k_cache + offset);
        v_value = *reinterpret_cast<const uint4*>(p.v_cache + offset);
      }
      *reinterpret_cast<uint4*>(k_tile + key * L::kLdQkv + vector * 8) = k_value;
      *reinterpret_cast<uint4*>(v_tile + key * L::kLdQkv + vector * 8) = v_value;
    }
    __syncthreads();

    // S = Q · Kᵀ for this warp's 16 rows and the tile's 64 keys.
    for (int key_block = 0; key_block < kFlashKeys / 16; ++key_block) {
      wmma::fragment<wmma::accumulator, 16, 16, 16, float> scores;
      wmma::fill_fragment(scores, 0.0f);
#pragma unroll
      for (int d = 0; d < kHeadDim; d += 16) {
        wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> q_fragment;
        wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::col_major> k_fragment;
        wmma::load_matrix_sync(q_fragment, q_tile + warp * 16 * L::kLdQkv + d, L::kLdQkv);
        wmma::load_matrix_sync(k_fragment, k_tile + key_block * 16 * L::kLdQkv + d, L::kLdQkv);
        wmma::mma_sync(scores, q_fragment, k_fragment, scores);
      }
      wmma::store_matrix_sync(s_tile + warp * 16 * L::kLdS + key_block * 16, scores, L::kLdS, wmma::mem_row_major);
    }
    __syncwarp();

    // Online softmax over the tile, masked causally (and by the sliding window).
    const int half = lane % 2;
    float tile_max = -INFINITY;
    float* s_row = s_tile + my_row * L::kLdS;
    for (int j = half * 32; j < half * 32 + 32; ++j) {
      const int key = tile_start + j;
      const bool visible = my_row_valid && key <= my_position &&
                           (p.sliding_window <= 0 || key > my_position - p.sliding_window);
      const float score = visible ? s_row[j] * p.scale : -INFINITY;
      s_row[j] = score;
      tile_max = fmaxf(tile_max, score);
    }
    tile_max = fmaxf(tile_max, __shfl_xor_sync(0xffffffffu, tile_max, 1));
    const float new_max = fmaxf(running_max, tile_max);
    const float correction = new_max == -INFINITY ? 1.0f : __expf(running_max - new_max);
    float tile_sum = 0.0f;
    __nv_bfloat16* p_row = p_tile + my_row * L::kLdP;
    for (int j = half * 32; j < half * 32 + 32; ++j) {
      const float weight = s_row[j] == -INFINITY ? 0.0f : __expf(s_row[j] - new_max);
      tile_sum += weight;
      p_row[j] = __float2bfloat16(weight);
    }
    tile_sum += __shfl_xor_sync(0xffffffffu, tile_sum, 1);
    running_sum = running_sum * correction + tile_sum;
    running_max = new_max;
    if (half == 0) alpha[my_row] = correction;
    __syncwarp();

    // Rescale this warp's output rows, then O += P · V on tensor cores.
    for (int index = lane; index < 16 * kHeadDim; index += 32) {
      const int row = warp * 16 + index / kHeadDim;
      o_tile[row * L::kLdO + index % kHeadDim] *= alpha[row];
    }
    __syncwarp();
#pragma unroll
    for (int d = 0; d < kHeadDim; d += 16) {
      wmma::fragment<wmma::accumulator, 16, 16, 16, float> output;
      wmma::load_matrix_sync(output, o_tile + warp * 16 * L::kLdO + d, L::kLdO, wmma::mem_row_major);
#pragma unroll
      for (int key_block = 0; key_block < kFlashKeys / 16; ++key_block) {
        wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> p_fragment;
        wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::row_major> v_fragment;
        wmma::load_matrix_sync(p_fragment, p_tile + warp * 16 * L::kLdP + key_block * 16, L::kLdP);
        wmma::load_matrix_sync(v_fragment, v_tile + key_block * 16 * L::kLdQkv + d, L::kLdQkv);
        wmma::mma_sync(output, p_fragment, v_fragment, output);
      }
      wmma::store_matrix_sync(o_tile + warp * 16 * L::kLdO + d, output, L::kLdO, wmma::mem_row_major);
    }
    __syncwarp();
  }

  if (p.n_key_splits > 1) {
    // The split's unnormalised state of each row: its max, its sum and its weighted values.
    const int64_t state_floats = kHeadDim + 2;
    auto state_of = [&](int row) {
      return p.partial + (((int64_t(split) * p.n_tiles + blockIdx.x) * kFlashRows + row) * p.n_heads + head) * state_floats;
    };
    if (lane % 2 == 0 && my_row_valid) {
      state_of(my_row)[0] = running_max;
      state_of(my_row)[1] = running_sum;
    }
    for (int index = lane; index < 16 * kHeadDim; index += 32) {
      const int row = warp * 16 + index / kHeadDim, d = index % kHeadDim;
      if (row < tile.n_rows) state_of(row)[2 + d] = o_tile[row * L::kLdO + d];
    }
    return;
  }
  // Normalise and write this warp's rows (both lanes of a pair hold the row's sum).
  if (lane % 2 == 0) alpha[my_row] = running_sum > 0.0f ? 1.0f / running_sum : 0.0f;
  __syncwarp();
  for (int index = lane; index < 16 * kHeadDim; index += 32) {
    const int row = warp * 16 + index / kHeadDim, d = index % kHeadDim;
    if (row < tile.n_rows)
      p.out[int64_t(first_row + row) * q_stride + head * kHeadDim + d] =
          __float2bfloat16(o_tile[row * L::kLdO + d] * alpha[row]);
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
