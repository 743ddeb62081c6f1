#include "ops/cpu/expert_routing.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace shardlm::cpu {

ExpertRoutes route_top_k(const float* logits, int64_t n_rows, int n_experts, int top_k, bool normalize) {
  ExpertRoutes routes;
  routes.top_k = top_k;
  routes.experts.resize(size_t(n_rows * top_k));
  routes.weights.resize(size_t(n_rows * top_k));
  std::vector<float> probabilities(static_cast<size_t>(n_experts));
  std::vector<int32_t> order(static_cast<size_t>(n_experts));
  for (int64_t row = 0; row < n_rows; ++row) {
    const float* row_logits = logits + row * n_experts;
    const float largest = *std::max_element(row_logits, row_logits + n_experts);
    float total = 0.0f;
    for (int e = 0; e < n_experts; ++e) total += probabilities[size_t(e)] = std::exp(row_logits[e] - largest);
    for (float& p : probabilities) p /= total;
    std::iota(order.begin(), order.end(), 0);
    std::partial_sort(order.begin(), order.begin() + top_k, order.end(), [&](int32_t a, int32_t b) {
      return probabilities[size_t(a)] > probabilities[size_t(b)] || (probabilities[size_t(a)] == probabilities[size_t(b)] && a < b);
    });
    float chosen = 0.0f;
    for (int k = 0; k < top_k; ++k) chosen += probabilities[size_t(order[size_t(k)])];
    for (int k = 0; k < top_k; ++k) {
      const size_t slot = size_t(row * top_k + k);
      routes.experts[slot] = order[size_t(k)];
      routes.weights[slot] = probabilities[size_t(order[size_t(k)])] / (normalize ? chosen : 1.0f);
    }
  }
  return routes;
}

}  // namespace shardlm::cpu
