// Sampling. Candidates are sorted by logit once; top-k truncates the sorted list, top-p keeps the
// smallest prefix whose probability mass reaches p (always at least one token), min-p the prefix
// whose probabilities reach min_p times the first's, then one draw.
#include "ops/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <unordered_set>
#include <vector>

#include "core/error.h"

namespace shardlm {

void validate_sampling_params(const SamplingParams& params) {
  if (!(params.temperature >= 0.0f) || !std::isfinite(params.temperature))
    fail("--temperature must be a finite number >= 0, got {}", params.temperature);
  if (params.top_k < 0) fail("--top-k must be >= 0 (0 disables it), got {}", params.top_k);
  if (!(params.top_p > 0.0f && params.top_p <= 1.0f)) fail("--top-p must be in (0, 1], got {}", params.top_p);
  if (!(params.min_p >= 0.0f && params.min_p <= 1.0f)) fail("--min-p must be in [0, 1] (0 disables it), got {}", params.min_p);
  if (params.logprobs < -1 || params.logprobs > kMaxTopLogprobs)
    fail("logprobs must be between 0 and {}, got {}", kMaxTopLogprobs, params.logprobs);
  if (!(params.repetition_penalty > 0.0f) || !std::isfinite(params.repetition_penalty))
    fail("--repetition-penalty must be a finite number > 0 (1 disables it), got {}", params.repetition_penalty);
  if (!(std::fabs(params.frequency_penalty) <= 2.0f))
    fail("--frequency-penalty must be between -2 and 2, got {}", params.frequency_penalty);
  if (!(std::fabs(params.presence_penalty) <= 2.0f))
    fail("--presence-penalty must be between -2 and 2, got {}", params.presence_penalty);
  std::unordered_set<int32_t> biased;
  for (const TokenBias& entry : params.logit_bias) {
    if (entry.token < 0) fail("logit_bias: token id {} is negative", entry.token);
    if (!(std::fabs(entry.bias) <= 100.0f))
      fail("logit_bias: the bias of token {} must be between -100 and 100, got {}", entry.token, entry.bias);
    if (!biased.insert(entry.token).second) fail("logit_bias: token {} appears twice", entry.token);
  }
}

SampledLogprobs sampled_logprobs(std::span<const float> logits, int32_t token, int top_n) {
  // log_softmax in double: the sum of 100k+ exponentials loses nothing that way.
  const float max_logit = *std::max_element(logits.begin(), logits.end());
  double sum = 0.0;
  for (float logit : logits) sum += std::exp(double(logit) - double(max_logit));
  const double log_normaliser = double(max_logit) + std::log(sum);
  auto logprob = [&](int32_t id) { return float(double(logits[size_t(id)]) - log_normaliser); };
  std::vector<int32_t> ids(logits.size());
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = int32_t(i);
  const size_t n = std::min(size_t(std::max(top_n, 0)), ids.size());
  std::partial_sort(ids.begin(), ids.begin() + ptrdiff_t(n), ids.end(), [&](int32_t a, int32_t b) {
    return logits[size_t(a)] > logits[size_t(b)] || (logits[size_t(a)] == logits[size_t(b)] && a < b);
  });
  SampledLogprobs result{logprob(token), {}};
  for (size_t i = 0; i < n; ++i) result.top.push_back({ids[i], logprob(ids[i])});
  return result;
}

void fail_non_finite_logits(int sequence, int64_t position) {
  fail("non-finite logits (NaN or Inf) at position {} of sequence {}: the model computed no usable "
       "distribution; check the weights with `shardlm info --check-weights`",
       position, sequence);
}

int32_t argmax(std::span<const float> logits) {
  return int32_t(std::max_element(logits.begin(), logits.end()) - logits.begin());
}

Sampler::Sampler(const SamplingParams& params) : params_(params), rng_(params.seed) {
  validate_sampling_params(params);
}

int32_t Sampler::sample(std::span<const float> logits) {
  // Checked first: a NaN would also break the sort's ordering below. One pass over the row is
  // small beside the head's matmul that produced it.
  if (!std::all_of(logits.begin(), logits.end(), [](float logit) { return std::isfinite(logit); }))
    return kNonFiniteLogits;
  if (params_.temperature == 0.0f) return argmax(logits);

  std::vector<int32_t> order(logits.size());
  std::iota(order.begin(), order.end(), 0);
  size_t n_candidates = logits.size();
  if (params_.top_k > 0 && size_t(params_.top_k) < n_candidates) {
    n_candidates = size_t(params_.top_k);
    std::partial_sort(order.begin(), order.begin() + std::ptrdiff_t(n_candidates), order.end(),
                      [&](int32_t a, int32_t b) { return logits[size_t(a)] > logits[size_t(b)]; });
  } else {
    std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return logits[size_t(a)] > logits[size_t(b)]; });
  }

  std::vector<double> probabilities(n_candidates);
  const double max_logit = logits[size_t(order[0])];
  double total = 0.0;
  for (size_t i = 0; i < n_candidates; ++i) {
    probabilities[i] = std::exp((double(logits[size_t(order[i])]) - max_logit) / params_.temperature);
    total += probabilities[i];
  }
  if (params_.top_p < 1.0f) {
    double cumulative = 0.0;
    size_t kept = 0;
    while (kept < n_candidates) {
      cumulative += probabilities[kept] / total;
      ++kept;
      if (cumulative >= params_.top_p) break;
    }
    n_candidates = kept;
    probabilities.resize(n_candidates);
  }
  if (params_.min_p > 0.0f) {
    // The candidates are sorted, so the likeliest comes first and those kept are a prefix.
    size_t kept = 1;
    while (kept < n_candidates && probabilities[kept] >= double(params_.min_p) * probabilities[0]) ++kept;
    n_candidates = kept;
    probabilities.resize(n_candidates);
  }
  std::discrete_distribution<size_t> distribution(probabilities.begin(), probabilities.end());
  return order[distribution(rng_)];
}

}  // namespace shardlm
