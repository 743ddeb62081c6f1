// Embedding lookup: one block per row.
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/kernels/embedding.h"
#include "backend/cuda/kernels/pdl.cuh"

namespace shardlm::cuda {

// ---------------------------------------------------------------------------------------------
// kernels

__global__ void embedding_kernel(const __nv_bfloat16* table, const int32_t* tokens, int dim, float* out) {
  wait_for_predecessor();
  allow_successor();
  const __nv_bfloat16* row = table + int64_t(tokens[blockIdx.x]) * dim;
  float* result = out + int64_t(blockIdx.x) * dim;
  for (int i = threadIdx.x; i < dim; i += blockDim.x) result[i] = __bfloat162float(row[i]);
}

// ---------------------------------------------------------------------------------------------
// launchers

void launch_embedding(const __nv_bfloat16* table, const int32_t* tokens, int n_rows, int dim, float* out,
                      cudaStream_t stream) {
  if (n_rows == 0) return;
  launch_pdl(embedding_kernel, n_rows, 256, 0, stream, table, tokens, dim, out);
  CUDA_CHECK_LAUNCH();
}

}  // namespace shardlm::cuda
