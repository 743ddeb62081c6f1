// Element-wise pieces of the host collectives, shared by the thread and TCP backends so both sum
// the same way: widen each rank's values to f32, add them in rank order, narrow once. Equal inputs
// therefore give bit-identical outputs on every rank and in both backends.
#pragma once

#include <cstddef>

#include "core/dtype.h"

namespace shardlm {

void widen_to_f32(DType dtype, const void* source, size_t count, float* destination);
void accumulate_f32(DType dtype, const void* source, size_t count, float* sums);  // sums[i] += source[i]
void narrow_from_f32(DType dtype, const float* source, size_t count, void* destination);

}  // namespace shardlm
