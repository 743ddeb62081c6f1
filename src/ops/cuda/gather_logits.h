// The tensor-parallel LM head's output, reassembled: each rank computed the logits of its block of
// the vocabulary for every row, the all-gather stacked the ranks' blocks, and this puts them back
// in row order.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace shardlm::cuda {

// gathered: one block per rank, each of n_rows * block floats; block r holds, row after row, the logits of
// vocabulary [r * block, r * block + count_r), count_r = min(block, vocab - r * block).
// out (n_rows, vocab) f32.
void launch_gather_logits(const float* gathered, int n_rows, int64_t block, int64_t vocab, float* out,
                          cudaStream_t stream);

}  // namespace shardlm::cuda
