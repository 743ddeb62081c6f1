// Linear layer on the CPU: y = x · Wᵀ (+ bias), with W in its stored dtype ([out, in], HF layout).
#pragma once

#include <cstdint>
#include <span>

#include "core/weight_view.h"

namespace shardlm::cpu {

// x: (m, w.cols) f32 row-major; y: (m, w.rows) f32. bias may be absent (data == nullptr).
void matmul(const float* x, int64_t m, const WeightView& w, const WeightView& bias, float* y);

// One product of a group: y = x · wᵀ (+ bias), shaped as matmul's arguments.
struct MatmulProblem {
  const float* x = nullptr;
  int64_t m = 0;
  WeightView w;
  WeightView bias;
  float* y = nullptr;
};

// Runs every product in one parallel region, their weight rows handed out in chunks to whichever
// thread is free. Small products run together (a mixture-of-experts layer's chosen experts, a gate
// and an up projection) keep every core streaming, where a call each would start the threads
// again and wait for the slowest of them each time. Each y is exactly what matmul computes.
void matmul_group(std::span<const MatmulProblem> problems);

}  // namespace shardlm::cpu
