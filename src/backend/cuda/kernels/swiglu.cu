// SiLU(gate)·up, element-wise, two bf16 per thread step.
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/kernels/pdl.cuh"
#include "backend/cuda/kernels/swiglu.h"

namespace shardlm::cuda {

// ---------------------------------------------------------------------------------------------
// kernels

__global__ void silu_mul_kernel(const __nv_bfloat16* gate_up, int ff_dim, __nv_bfloat16* out) {
  wait_for_predecessor();
  allow_successor();
  const __nv_bfloat16* gate = gate_up + int64_t(blockIdx.y) * 2 * ff_dim;
  const __nv_bfloat16* up = gate + ff_dim;
  __nv_bfloat16* result = out + int64_t(blockIdx.y) * ff_dim;
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < ff_dim; i += gridDim.x * blockDim.x) {
    const float g = __bfloat162float(gate[i]);
    result[i] = __float2bfloat16(g / (1.0f + __expf(-g)) * __bfloat162float(up[i]));
  }
}

// ---------------------------------------------------------------------------------------------
// launchers

void launch_silu_mul(const __nv_bfloat16* gate_up, int n_rows, int ff_dim, __nv_bfloat16* out, cudaStream_t stream) {
  if (n_rows == 0) return;
  const int threads = 256;
  const dim3 grid((ff_dim + threads - 1) / threads, n_rows);
  launch_pdl(silu_mul_kernel, grid, threads, 0, stream, gate_up, ff_dim, out);
  CUDA_CHECK_LAUNCH();
}

}  // namespace shardlm::cuda
