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

// One sequence's keys or values in a paged cache: position p is row p % block_size of block
// blocks[p / block_size] in a (blocks, block_size, stride) store.
struct PagedRows {
  const float* store;
  const int32_t* blocks;
  int64_t block_size;
  int64_t stride;  // n_kv_heads * head_dim

  const float* row(int64_t position) const {
    return store + (int64_t(blocks[position / block_size]) * block_size + position % block_size) * stride;
  }
};

// Query heads head_begin..head_end-1, all of one KV head's group, for one token: each key and value
// row is read once for all of them. q: (n_heads, head_dim). Positions first..last inclusive of
// keys/values are attended. Writes those heads of out:
// (n_heads, head_dim). scores: scratch of (head_end - head_begin) * (last + 1) floats.
void attend_heads(const float* q, const PagedRows& keys, const PagedRows& values, int64_t first, int64_t last,
                  const AttentionShape& shape, int head_begin, int head_end, float* out, float* scores);

}  // namespace shardlm::cpu
