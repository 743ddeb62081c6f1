// SwiGLU activation: out = silu(gate) · up, element-wise.
#pragma once

#include <cstdint>

namespace shardlm::cpu {

void silu_mul(const float* gate, const float* up, int64_t n, float* out);

}  // namespace shardlm::cpu
