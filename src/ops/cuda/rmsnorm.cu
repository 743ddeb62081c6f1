// Add + RMSNorm, one block per row. The residual stream stays f32 between layers, which is more
// accurate than transformers' bf16 residual and costs little next to the weights.
#include "core/cuda/cuda_check.h"
#include "ops/cuda/common.cuh"
#include "ops/cuda/pdl.cuh"
#include "ops/cuda/rmsnorm.h"

namespace shardlm::cuda {

// ---------------------------------------------------------------------------------------------
// kernels

__global__ void add_rmsnorm_kernel(float* residual, const __nv_bfloat16* delta, const __nv_bfloat16* weight,
                                   float eps, int dim, const int32_t* row_index, __nv_bfloat16* out) {
  wait_for_predecessor();
  allow_successor();
  const int64_t source_row = row_index ? row_index[blockIdx.x] : blockIdx.x;
  float* x = residual + source_row * dim;
  const __nv_bfloat16* d = delta ? delta + source_row * dim : nullptr;
  float sum_squares = 0.0f;
  for (int i = threadIdx.x; i < dim; i += blockDim.x) {
    float value = x[i];
    if (d) {
      value += __bfloat162float(d[i]);
      x[i] = value;
    }
    sum_squares += value * value;
  }
  if (!out) return;  // only the add: the residual is handed to another device
  const float inverse_rms = rsqrtf(block_sum(sum_squares) / float(dim) + eps);
  __nv_bfloat16* y = out + int64_t(blockIdx.x) * dim;
  for (int i = threadIdx.x; i < dim; i += blockDim.x)
    y[i] = __float2bfloat16(__bfloat162float(weight[i]) * (x[i] * inverse_rms));
}

// ---------------------------------------------------------------------------------------------
// launchers

void launch_add_rmsnorm(float* residual, const __nv_bfloat16* delta, const __nv_bfloat16* weight, float eps,
                        int n_rows, int dim, const int32_t* row_index, __nv_bfloat16* out, cudaStream_t stream) {
  if (n_rows == 0) return;
  const int threads = dim >= 4096 ? 1024 : dim >= 1024 ? 512 : 128;
  launch_pdl(add_rmsnorm_kernel, n_rows, threads, 0, stream, residual, row_index ? nullptr : delta, weight, eps, dim,
             row_index, out);
  CUDA_CHECK_LAUNCH();
}

}  // namespace shardlm::cuda
