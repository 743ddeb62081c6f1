// SiLU(gate)·up for the Llama MLP.
#include "ops/cpu/swiglu.h"

#include <cmath>

namespace shardlm::cpu {
namespace {

// Below this many elements one thread is quicker than waking the others. One decode row of
// Llama-3-8B (14336) took 56 us on one core of a GPU host, where a parallel region costs about 4 us.
constexpr int64_t kParallelElements = 4096;

}  // namespace

void silu_mul(const float* gate, const float* up, int64_t n, float* out) {
#pragma omp parallel for schedule(static) if (n >= kParallelElements)
  for (int64_t i = 0; i < n; ++i) out[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
}

}  // namespace shardlm::cpu
