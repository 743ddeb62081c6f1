// Prefill attention on tensor cores for a run of consecutive positions of one sequence (the usual
// prompt chunk): flash-attention style, never storing the (rows × keys) score matrix.
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
  __nv_bfloat16* out;            // (n_rows, n_heads * head_dim)
};

bool prefill_attention_supports(int head_dim);
void launch_prefill_attention(const PrefillAttentionParams& params, cudaStream_t stream);

}  // namespace shardlm::cuda
