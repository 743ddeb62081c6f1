// Residual add fused with RMSNorm: residual += delta; out = rmsnorm(residual) · weight.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace shardlm::cuda {

// residual (n_rows, dim) f32, updated in place when delta (n_rows, dim) bf16 is given (else
// only normalised); out (n_rows, dim) bf16. If row_index is given, output row i normalises
// residual row row_index[i] (used to pick the rows that need logits) and nothing is added.
// With out == nullptr (and weight unused) only the add happens.
void launch_add_rmsnorm(float* residual, const __nv_bfloat16* delta, const __nv_bfloat16* weight, float eps,
                        int n_rows, int dim, const int32_t* row_index, __nv_bfloat16* out, cudaStream_t stream);

}  // namespace shardlm::cuda
