// Embedding lookup: one block per row. A vocabulary-parallel rank holds rows [vocab_begin,
// vocab_begin + vocab_rows) of the table and writes zeros for tokens outside them; the all-reduce
// that follows completes every row.
#include "core/cuda/cuda_check.h"
#include "ops/cuda/embedding.h"
#include "ops/cuda/pdl.cuh"

namespace shardlm::cuda {

// ---------------------------------------------------------------------------------------------
// kernels

__global__ void embedding_kernel(const __nv_bfloat16* table, const int32_t* tokens, int dim, int vocab_begin,
                                 int vocab_rows, float* out) {
  wait_for_predecessor();
  allow_successor();
  const int local = tokens[blockIdx.x] - vocab_begin;
  float* result = out + int64_t(blockIdx.x) * dim;
  if (local < 0 || local >= vocab_rows) {
    for (int i = threadIdx.x; i < dim; i += blockDim.x) result[i] = 0.0f;
    return;
  }
  const __nv_bfloat16* row = table + int64_t(local) * dim;
  for (int i = threadIdx.x; i < dim; i += blockDim.x) result[i] = __bfloat162float(row[i]);
}

// ---------------------------------------------------------------------------------------------
// launchers

void launch_embedding(const __nv_bfloat16* table, const int32_t* tokens, int n_rows, int dim, float* out,
                      cudaStream_t stream, int vocab_begin, int vocab_rows) {
  if (n_rows == 0) return;
  launch_pdl(embedding_kernel, n_rows, 256, 0, stream, table, tokens, dim, vocab_begin, vocab_rows, out);
  CUDA_CHECK_LAUNCH();
}

}  // namespace shardlm::cuda
