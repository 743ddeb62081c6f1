// Copies a stored weight into bf16 on the host (a plain copy when it is bf16 already), with all
// OpenMP threads: offloaded layers are kept and streamed in the GPU's bf16 layout.
#pragma once

#include <cstdint>

#include "core/weight_view.h"

namespace shardlm {

// out receives view.numel() bf16 values, row after row (a strided view is packed).
void narrow_to_bf16(const WeightView& view, uint16_t* out);

}  // namespace shardlm
