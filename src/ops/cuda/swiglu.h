// SwiGLU on the fused gate/up projection: out = silu(gate) · up.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace shardlm::cuda {

// gate_up (n_rows, 2 ff_dim) = [gate | up] per row; out (n_rows, ff_dim).
void launch_silu_mul(const __nv_bfloat16* gate_up, int n_rows, int ff_dim, __nv_bfloat16* out, cudaStream_t stream);

}  // namespace shardlm::cuda
