// SiLU(gate)·up for the Llama MLP.
#include "backend/cpu/swiglu.h"

#include <cmath>

namespace shardlm::cpu {

void silu_mul(const float* gate, const float* up, int64_t n, float* out) {
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; ++i) out[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
}

}  // namespace shardlm::cpu
