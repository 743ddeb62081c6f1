// Causal grouped-query attention of one token over a KV cache, on the CPU.
#pragma once

#include <cstdint>

namespace shardlm::cpu {

struct AttentionShape {
  int n_heads;
  int n_kv_heads;  // query head h reads KV head h / (n_heads / n_kv_heads)
  int head_dim;
  float scale;     // usually head_dim^-0.5
};

// q: (n_heads, head_dim) for one token. keys/values: (positions, n_kv_heads * head_dim), rows
// first..last inclusive are attended. out: (n_heads, head_dim). scores: scratch of last+1 floats.
void attend_one_head(const float* q, const float* keys, const float* values, int64_t first, int64_t last,
                     const AttentionShape& shape, int head, float* out, float* scores);

}  // namespace shardlm::cpu
