// Embedding lookup on the GPU: residual rows (f32) from bf16 table rows.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace shardlm::cuda {

// out (n_rows, dim) f32 = table[tokens[i]] for each row. A table holding only rows
// [vocab_begin, vocab_begin + vocab_rows) of the vocabulary yields zeros for the other tokens.
void launch_embedding(const __nv_bfloat16* table, const int32_t* tokens, int n_rows, int dim, float* out,
                      cudaStream_t stream, int vocab_begin = 0, int vocab_rows = 0x7fffffff);

}  // namespace shardlm::cuda
