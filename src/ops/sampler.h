// Picks the next token from logits: greedy (temperature 0), or temperature → top-k → top-p → min-p
// sampling in that order, as transformers' logits warpers apply them. Seeded, so runs repeat.
#pragma once

#include <cstdint>
#include <random>
#include <span>
#include <vector>

#include "ops/logit_penalties.h"

namespace shardlm {

struct TokenBias {
  int32_t token = 0;
  float bias = 0.0f;
};

struct SamplingParams {
  float temperature = 0.0f;  // 0 means greedy
  int top_k = 0;             // 0 disables
  float top_p = 1.0f;        // 1 disables
  uint64_t seed = 0;
  // >= 0: report the sampled token's log-probability and those of this many most likely tokens
  // (OpenAI's logprobs, at most kMaxTopLogprobs); -1: none.
  int logprobs = -1;
  // Changes to the logits before sampling (ops/logit_penalties.h); neutral as constructed.
  float repetition_penalty = 1.0f;  // > 0; 1 disables
  float frequency_penalty = 0.0f;   // in [-2, 2]
  float presence_penalty = 0.0f;    // in [-2, 2]
  std::vector<TokenBias> logit_bias;  // each token once, biases in [-100, 100]
  // After top-p: keeps the tokens whose probability is at least min_p times the likeliest's; 0 disables.
  float min_p = 0.0f;
  bool penalises() const {
    return repetition_penalty != 1.0f || frequency_penalty != 0.0f || presence_penalty != 0.0f || !logit_bias.empty();
  }
};

inline constexpr int kMaxTopLogprobs = 20;

struct TokenLogprob {
  int32_t token = 0;
  float logprob = 0.0f;
};

// A sampled token's log-probability and the most likely tokens', most likely first.
struct SampledLogprobs {
  float logprob = 0.0f;
  std::vector<TokenLogprob> top;
};

// From the raw logits (before temperature, top-k and top-p, as vLLM reports by default): the
// log-softmax of `token` and of the top_n largest logits (ties: the lower id first).
SampledLogprobs sampled_logprobs(std::span<const float> logits, int32_t token, int top_n);

// Throws Error naming the option when a parameter is out of range.
void validate_sampling_params(const SamplingParams& params);

// What a sampler returns for a row with a NaN or infinite logit (the CPU sampler and the CUDA
// sampling kernel alike): no token can be chosen from it, and greedy would silently pick one.
constexpr int32_t kNonFiniteLogits = -1;

// The error for a sampled row whose logits were not all finite, naming where generation stopped.
[[noreturn]] void fail_non_finite_logits(int sequence, int64_t position);

class Sampler {
 public:
  explicit Sampler(const SamplingParams& params);
  // The next token, or kNonFiniteLogits when any logit is NaN or infinite.
  int32_t sample(std::span<const float> logits);

 private:
  SamplingParams params_;
  std::mt19937_64 rng_;
};

// Index of the largest logit (the first one on ties, as torch.argmax).
int32_t argmax(std::span<const float> logits);

}  // namespace shardlm
