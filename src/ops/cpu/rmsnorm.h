// RMSNorm on the CPU, as LlamaRMSNorm computes it: x / sqrt(mean(x²) + eps) · weight, in f32.
#pragma once

#include <cstdint>

#include "core/weight_view.h"

namespace shardlm::cpu {

// Normalises each of `rows` vectors of length `dim` (weight has `dim` elements); out may alias x.
void rmsnorm(const float* x, int64_t rows, int64_t dim, const WeightView& weight, float eps, float* out);

}  // namespace shardlm::cpu
