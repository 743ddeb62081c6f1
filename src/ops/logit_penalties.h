// What a request's penalties and logit bias do to a row's logits before it is sampled, as vLLM
// applies them: the bias is added first; then repetition_penalty scales every token the sequence
// holds, prompt or output (a positive logit divided by it, a negative one multiplied, as
// Transformers' RepetitionPenaltyLogitsProcessor does), and frequency_penalty times the token's
// count in the output, plus presence_penalty once if it is there, is subtracted (OpenAI's
// definitions). Only the listed tokens change, so a row carries a short list instead of a
// vocabulary-sized mask. The CPU sampler and the CUDA sampling kernel share the arithmetic below.
// Log-probabilities stay those of the raw logits, as vLLM reports them by default.
#pragma once

#include <cfloat>
#include <cstddef>
#include <cstdint>
#include <vector>
#if __cplusplus >= 202002L
#include <span>
#endif

#if defined(__CUDACC__)
#define SHARDLM_HOST_DEVICE __host__ __device__
#else
#define SHARDLM_HOST_DEVICE
#endif

namespace shardlm {

// A row's scalar penalties (neutral as constructed).
struct PenaltyScales {
  float repetition = 1.0f;
  float frequency = 0.0f;
  float presence = 0.0f;
};

// One token whose logit a row changes, each token once per row.
struct PenalisedToken {
  int32_t token = 0;
  int32_t output_count = 0;  // times it appears in the output so far
  int32_t in_prompt = 0;     // 1: it appears in the prompt
  float bias = 0.0f;         // logit_bias
};

// One sampled row's: empty tokens change nothing.
struct LogitPenalties {
  PenaltyScales scales;
  std::vector<PenalisedToken> tokens;
};

// The changed logit. A finite logit stays finite (clamped), so a large penalty cannot pass for the
// model's own non-finite output, which the samplers report as an error.
SHARDLM_HOST_DEVICE inline float penalised_logit(float logit, const PenalisedToken& token, const PenaltyScales& scales) {
  if (!(logit - logit == 0.0f)) return logit;  // NaN or infinite: left for the sampler to report
  float value = logit + token.bias;
  if (token.in_prompt != 0 || token.output_count > 0)
    value = value > 0.0f ? value / scales.repetition : value * scales.repetition;
  value -= scales.frequency * float(token.output_count) + (token.output_count > 0 ? scales.presence : 0.0f);
  return value > FLT_MAX ? FLT_MAX : value < -FLT_MAX ? -FLT_MAX : value;
}

// The host's side. CUDA code compiles as C++17 (cmake/cuda.cmake), without std::span, and needs
// only what is above.
#if __cplusplus >= 202002L
// Changes a row's logits (vocab_size of them) in place.
void apply_logit_penalties(std::span<float> logits, const LogitPenalties& penalties);

// Throws Error unless `penalties` is empty or holds one entry per row that wants logits, and every
// token it names lies inside the vocabulary (a rank indexes the logits by them).
void check_logit_penalties(std::span<const LogitPenalties> penalties, size_t logit_rows, int vocab_size);
#endif

}  // namespace shardlm
