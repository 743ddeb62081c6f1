// One thread per output logit.
#include "core/cuda/cuda_check.h"
#include "ops/cuda/gather_logits.h"

namespace shardlm::cuda {

// ---------------------------------------------------------------------------------------------
// kernels

__global__ void gather_logits_kernel(const float* gathered, int n_rows, int64_t block, int64_t vocab, float* out) {
  const int64_t index = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (index >= int64_t(n_rows) * vocab) return;
  const int64_t row = index / vocab, column = index % vocab;
  const int64_t rank = column / block, within = column % block;
  const int64_t count = min(block, vocab - rank * block);
  out[index] = gathered[rank * n_rows * block + row * count + within];
}

// ---------------------------------------------------------------------------------------------
// launchers

void launch_gather_logits(const float* gathered, int n_rows, int64_t block, int64_t vocab, float* out,
                          cudaStream_t stream) {
  const int64_t total = int64_t(n_rows) * vocab;
  if (total == 0) return;
  gather_logits_kernel<<<unsigned((total + 255) / 256), 256, 0, stream>>>(gathered, n_rows, block, vocab, out);
  CUDA_CHECK_LAUNCH();
}

}  // namespace shardlm::cuda
