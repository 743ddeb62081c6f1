// Test support: how logits are compared with a reference (relative L2 error), and when a greedy
// choice is too close to call in bf16 (a near tie), and a token's log-probability, for the CPU and
// GPU model suites alike.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <span>
#include <vector>

namespace shardlm {

// ||actual - expected|| / ||expected||
inline double relative_l2_error(std::span<const float> actual, std::span<const float> expected) {
  double difference = 0, reference = 0;
  for (size_t i = 0; i < expected.size(); ++i) {
    difference += (double(actual[i]) - expected[i]) * (double(actual[i]) - expected[i]);
    reference += double(expected[i]) * expected[i];
  }
  return std::sqrt(difference / reference);
}

// The two largest logits lie within 2% of the logits' spread: bf16 rounding may swap them.
inline bool near_tie(std::span<const float> logits) {
  std::vector<float> sorted(logits.begin(), logits.end());
  std::nth_element(sorted.begin(), sorted.begin() + 1, sorted.end(), std::greater<float>());
  const float spread =
      *std::max_element(logits.begin(), logits.end()) - *std::min_element(logits.begin(), logits.end());
  return sorted[0] - sorted[1] <= 0.02f * spread;
}

// The log-softmax of logits at one token, in double.
inline float log_softmax_at(std::span<const float> logits, int32_t token) {
  const float largest = *std::max_element(logits.begin(), logits.end());
  double sum = 0;
  for (float logit : logits) sum += std::exp(double(logit - largest));
  return float(double(logits[size_t(token)] - largest) - std::log(sum));
}

}  // namespace shardlm
