// Applies rotary position embeddings in place, HF "rotate_half" layout: element i pairs with
// element i + head_dim/2 (not interleaved pairs).
#pragma once

#include <cstdint>
#include <span>

namespace shardlm::cpu {

// x: (n_heads, head_dim) for one token at `position`; inv_freq has head_dim/2 entries.
void apply_rope(float* x, int n_heads, int head_dim, int64_t position, std::span<const float> inv_freq,
                float attention_scaling);

}  // namespace shardlm::cpu
