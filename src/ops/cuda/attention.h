// Causal grouped-query attention over the KV cache, for prefill and decode alike: every query row
// attends to the cached positions of its own sequence up to its own position (within the sliding
// window if any). Online softmax, so no (seq × seq) score matrix is ever stored; long contexts are
// split over several blocks (split-K) and merged by the split that finishes last.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "ops/cuda/paged_kv.h"

namespace shardlm::cuda {

// Splits are merged by one warp, a lane per split.
constexpr int kMaxAttentionSplits = 32;

struct AttentionParams {
  const __nv_bfloat16* q;        // (the pass's rows, n_heads * head_dim), rotated
  const __nv_bfloat16* k_cache;  // (blocks, block_size, n_kv_heads * head_dim) for this layer
  const __nv_bfloat16* v_cache;
  const int32_t* positions;      // (the pass's rows)
  const int32_t* slots;          // (the pass's rows)
  const int32_t* row_index;      // (n_rows): the pass's rows to attend for, or null for rows 0..n_rows-1
  PagedKv kv;
  int n_rows, n_heads, n_kv_heads, head_dim;
  int sliding_window;            // 0: none
  float scale;                   // head_dim^-0.5
  int n_splits;                  // blocks per (row, head) along the keys; 1 writes out directly
  float* partial;                // (n_rows, n_heads, n_splits, head_dim + 2) scratch when n_splits > 1
  int* split_counters;           // (n_rows, n_heads) zeros when n_splits > 1; each merge resets its own
                                 // (one per row and block of heads: n_heads is always enough)
  __nv_bfloat16* out;            // (the pass's rows, n_heads * head_dim): the attended rows are written
};

// Floats of one split's state: its running max, its sum and head_dim weighted values.
__host__ __device__ constexpr int64_t attention_state_floats(int head_dim) { return int64_t(head_dim) + 2; }

// Blocks per row and split of a launch of n_rows: one per KV head and block of up to 8 of its query
// heads (fewer when the launch has few rows).
int attention_blocks_per_row(int n_rows, int n_heads, int n_kv_heads, int head_dim);

// Scratch floats `partial` must hold for a given shape.
int64_t attention_partial_floats(int n_rows, int n_heads, int n_splits, int head_dim);
void launch_attention(const AttentionParams& params, cudaStream_t stream);

}  // namespace shardlm::cuda
