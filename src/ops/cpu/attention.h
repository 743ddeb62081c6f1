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

// Query heads that share one KV head (a grouped-query group).
inline int heads_per_kv_head(const AttentionShape& shape) { return shape.n_heads / shape.n_kv_heads; }

// Query heads head_begin..head_end-1, all of one KV head's group, for one token: each key and value
// row is read once for all of them. q: (n_heads, head_dim). keys/values: (positions,
// n_kv_heads * head_dim), rows first..last inclusive are attended. Writes those heads of out:
// (n_heads, head_dim). scores: scratch of (head_end - head_begin) * (last + 1) floats.
void attend_heads(const float* q, const float* keys, const float* values, int64_t first, int64_t last,
                  const AttentionShape& shape, int head_begin, int head_end, float* out, float* scores);

}  // namespace shardlm::cpu
