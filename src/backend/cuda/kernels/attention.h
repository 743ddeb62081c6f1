// Causal grouped-query attention over the KV cache, for prefill and decode alike: every query row
// attends to the cached positions of its own sequence up to its own position (within the sliding
// window if any). Online softmax, so no (seq × seq) score matrix is ever stored; long contexts are
// split over several blocks (split-K) and merged by a second kernel.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace shardlm::cuda {

struct AttentionParams {
  const __nv_bfloat16* q;        // (n_rows, n_heads * head_dim), rotated
  const __nv_bfloat16* k_cache;  // (slots, capacity, n_kv_heads * head_dim) for this layer
  const __nv_bfloat16* v_cache;
  const int32_t* positions;      // (n_rows)
  const int32_t* slots;          // (n_rows)
  int n_rows, n_heads, n_kv_heads, head_dim;
  int64_t capacity;
  int sliding_window;            // 0: none
  float scale;                   // head_dim^-0.5
  int n_splits;                  // blocks per (row, head) along the keys; 1 writes out directly
  float* partial;                // (n_rows, n_heads, n_splits, head_dim + 2) scratch when n_splits > 1
  __nv_bfloat16* out;            // (n_rows, n_heads * head_dim)
};

// Scratch floats `partial` must hold for a given shape.
int64_t attention_partial_floats(int n_rows, int n_heads, int n_splits, int head_dim);
void launch_attention(const AttentionParams& params, cudaStream_t stream);

}  // namespace shardlm::cuda
