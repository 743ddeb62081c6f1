// Prefill attention on tensor cores for runs of consecutive positions of sequences (prompt chunks,
// several in one pass beside decode rows when serving): flash-attention style, never storing the
// (rows × keys) score matrix. The runs come as tiles of up to 64 rows, a block per (tile, head). A short run
// over a long context (the rest of a prompt after a cached prefix, a late chunk of a long prompt)
// would leave most of the GPU idle with a block per (64 rows, head), so the keys are then split
// over several blocks whose partial states a second kernel merges.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <vector>

#include "ops/cuda/paged_kv.h"

namespace shardlm::cuda {

constexpr int kPrefillTileRows = 64;

// Rows row_begin .. row_begin + n_rows - 1 of the pass (n_rows <= 64): consecutive positions from
// first_position of the sequence in `slot`.
struct PrefillTile {
  int32_t row_begin, n_rows, slot, first_position;
};

// A run of n_rows rows from row_begin, cut into tiles appended to `tiles`.
void append_prefill_tiles(std::vector<PrefillTile>& tiles, int row_begin, int n_rows, int slot, int first_position);

struct PrefillAttentionParams {
  const __nv_bfloat16* q;        // (the pass's rows, n_heads * head_dim)
  const __nv_bfloat16* k_cache;  // (blocks, block_size, n_kv_heads * head_dim) of this layer
  const __nv_bfloat16* v_cache;
  PagedKv kv;
  const PrefillTile* tiles;      // (n_tiles), on the device
  int n_tiles, n_heads, n_kv_heads, head_dim;
  int sliding_window;            // 0: none
  float scale;
  int n_key_splits;              // blocks per (tile, head) along the keys
  float* partial;                // (n_key_splits, n_tiles, 64, n_heads, head_dim + 2) when n_key_splits > 1
  __nv_bfloat16* out;            // (the pass's rows, n_heads * head_dim): the tiles' rows are written
};

bool prefill_attention_supports(int head_dim);
// The key splits for n_tiles tiles whose longest context is n_keys: enough blocks to fill the GPU once.
int prefill_attention_key_splits(int n_tiles, int n_heads, int64_t n_keys);
// Scratch floats `partial` needs at most, for any run the splits above choose.
int64_t prefill_attention_max_partial_floats(int head_dim);
void launch_prefill_attention(const PrefillAttentionParams& params, cudaStream_t stream);

}  // namespace shardlm::cuda
