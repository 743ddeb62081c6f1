// Token selection on the GPU, so only token ids cross to the host: greedy argmax, or temperature
// with top-k, top-p and min-p, sampled by the Gumbel-max trick from a counter-based random stream. A row
// with a NaN or infinite logit gets kNonFiniteLogitsToken instead of a token, found in the pass
// that already reads every logit, so the check costs no extra kernel, pass or synchronisation.
// A row's penalties and logit bias (ops/logit_penalties.h) change its listed logits in place first.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "ops/logit_penalties.h"

namespace shardlm::cuda {

// The token of a row whose logits are not all finite (shardlm::kNonFiniteLogits on the host side).
constexpr int32_t kNonFiniteLogitsToken = -1;

// One row's settings: every row of a step may have its own (each request of a server its own).
struct RowSampling {
  float temperature = 0.0f;  // 0: greedy
  int32_t top_k = 0;         // 0: off
  float top_p = 1.0f;        // 1: off
  uint64_t seed = 0;
  float min_p = 0.0f;        // 0: off
  PenaltyScales scales;
  int32_t n_penalised = 0;                // tokens whose logits the row changes: none by default
  const PenalisedToken* penalised = nullptr;  // (n_penalised), in device memory
  float* raw_logits = nullptr;            // (n_penalised) out: their logits before the change
};

struct SamplingKernelParams {
  float* logits;                  // (n_rows, vocab); penalised rows are changed in place
  int n_rows, vocab;
  const RowSampling* settings;    // (n_rows), in device memory
  const int32_t* stream_offsets;  // (n_rows): distinct per row and step (e.g. slot·2^20 + position)
  int32_t* tokens;                // (n_rows) out: a token id, or kNonFiniteLogitsToken
};

void launch_sampling(const SamplingKernelParams& params, cudaStream_t stream);

}  // namespace shardlm::cuda
