// Linear layer on the CPU: y = x · Wᵀ (+ bias), with W in its stored dtype ([out, in], HF layout).
#pragma once

#include <cstdint>

#include "core/weight_view.h"

namespace shardlm::cpu {

// x: (m, w.cols) f32 row-major; y: (m, w.rows) f32. bias may be absent (data == nullptr).
void matmul(const float* x, int64_t m, const WeightView& w, const WeightView& bias, float* y);

}  // namespace shardlm::cpu
