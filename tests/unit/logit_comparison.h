// Test support: how logits are compared with a reference (relative L2 error), and when a greedy
// choice is too close to call in bf16 (a near tie), for the CPU and GPU model suites alike.
#pragma once

#include <algorithm>
#include <cmath>
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

}  // namespace shardlm
