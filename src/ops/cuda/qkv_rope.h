// The step between the fused q/k/v projection and attention: bias, per-head q/k RMSNorm (Qwen3),
// rotary embedding, and the store of k and v into the KV cache.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "ops/cuda/paged_kv.h"

namespace shardlm::cuda {

struct QkvRopeParams {
  const __nv_bfloat16* qkv;     // (n_rows, q_dim + 2 kv_dim): [q | k | v] from one GEMM
  const __nv_bfloat16* bias;    // (q_dim + 2 kv_dim) or nullptr
  const __nv_bfloat16* q_norm;  // (head_dim) or nullptr
  const __nv_bfloat16* k_norm;  // (head_dim) or nullptr
  float eps;
  const int32_t* positions;     // (n_rows)
  const int32_t* slots;         // (n_rows) KV-cache slot of each row's sequence
  const float* inv_freq;        // (head_dim / 2)
  float attention_scaling;
  int n_rows, n_heads, n_kv_heads, head_dim;
  __nv_bfloat16* q_out;         // (n_rows, q_dim)
  __nv_bfloat16* k_cache;       // (blocks, block_size, kv_dim) for this layer
  __nv_bfloat16* v_cache;
  PagedKv kv;
};

void launch_qkv_rope(const QkvRopeParams& params, cudaStream_t stream);

}  // namespace shardlm::cuda
