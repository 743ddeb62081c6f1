// Decode-sized linear layers (a few activation rows): y (m, n) = x (m, k) · Wᵀ, W (n, k) bf16.
// Memory-bound, so the kernel exists to stream W at full bandwidth; cuBLASLt's choices for m = 1
// leave a large share of it unused.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace shardlm::cuda {

constexpr int kGemvMaxRows = 8;

// BF16/F32: y = x·Wᵀ in that dtype. SWIGLU_BF16: W is (2n, k) = [gate; up] and
// y (m, n) = silu(x·gateᵀ) · (x·upᵀ), in bf16.
enum class GemvOutput { BF16, F32, SWIGLU_BF16 };

// Whether the GEMV kernel handles this shape (m <= kGemvMaxRows, k a multiple of 8, 16-byte
// aligned operands).
bool gemv_supports(int64_t m, int64_t k, const void* x, const void* w);
void launch_gemv(const __nv_bfloat16* x, int64_t m, const __nv_bfloat16* w, int64_t n, int64_t k, void* y,
                 GemvOutput output, cudaStream_t stream);

}  // namespace shardlm::cuda
