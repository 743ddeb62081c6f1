// Weight preparation on the GPU: widening/narrowing stored f32/f16 weights to bf16 after upload,
// and filling random weights for the built-in benchmark shapes (no checkpoint needed).
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace shardlm::cuda {

enum class SourceDtype { F32, F16, BF16 };

// dst (n) bf16 = src (n) of the given dtype, round to nearest even.
void launch_convert_to_bf16(const void* src, SourceDtype dtype, int64_t n, __nv_bfloat16* dst, cudaStream_t stream);
// dst (n) = mean + stddev · N(0, 1), deterministic in (seed, index).
void launch_fill_normal_bf16(__nv_bfloat16* dst, int64_t n, uint64_t seed, float mean, float stddev, cudaStream_t stream);

}  // namespace shardlm::cuda
