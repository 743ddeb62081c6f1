// Prefill attention on tensor cores for a run of consecutive positions of one sequence (the usual
// prompt chunk): flash-attention style, never storing the (rows × keys) score matrix. A short run
// over a long context (the rest of a prompt after a cached prefix, a late chunk of a long prompt)
// would leave most of the GPU idle with a block per (64 rows, head), so the keys are then split
// over several blocks whose partial states a second kernel merges.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "ops/cuda/paged_kv.h"

namespace shardlm::cuda {

struct PrefillAttentionParams {
  const __nv_bfloat16* q;        // (n_rows, n_heads * head_dim); row i is at position first_position + i
  const __nv_bfloat16* k_cache;  // (blocks, block_size, n_kv_heads * head_dim) of this layer
  const __nv_bfloat16* v_cache;
  PagedKv kv;
  int slot;                      // the sequence's
  int n_rows, first_position, n_heads, n_kv_heads, head_dim;
  int sliding_window;            // 0: none
  float scale;
  int n_key_splits;              // blocks per (64 rows, head) along the keys
  float* partial;                // (n_key_splits, n_rows, n_heads, head_dim + 2) when n_key_splits > 1
  __nv_bfloat16* out;            // (n_rows, n_heads * head_dim)
};

bool prefill_attention_supports(int head_dim);
// The key splits for a run of n_rows ending at key n_keys - 1: enough blocks to fill the GPU once.
int prefill_attention_key_splits(int n_rows, int n_heads, int64_t n_keys);
// Scratch floats `partial` needs at most, for any run the splits above choose.
int64_t prefill_attention_max_partial_floats(int head_dim);
void launch_prefill_attention(const PrefillAttentionParams& params, cudaStream_t stream);

}  // namespace shardlm::cuda
