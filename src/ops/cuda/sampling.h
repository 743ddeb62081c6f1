// Token selection on the GPU, so only token ids cross to the host: greedy argmax, or temperature
// with top-k and top-p, sampled by the Gumbel-max trick from a counter-based random stream.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace shardlm::cuda {

struct SamplingKernelParams {
  const float* logits;            // (n_rows, vocab)
  int n_rows, vocab;
  float temperature;              // 0: greedy
  int top_k;                      // 0: off
  float top_p;                    // 1: off
  uint64_t seed;
  const int32_t* stream_offsets;  // (n_rows): distinct per row and step (e.g. slot·2^20 + position)
  int32_t* tokens;                // (n_rows) out
};

void launch_sampling(const SamplingKernelParams& params, cudaStream_t stream);

}  // namespace shardlm::cuda
