// The router of a mixture-of-experts layer, after its logits: softmax in f32 over the experts, the
// top_k most probable (ties go to the lower expert id), renormalised to sum to 1 when asked
// (Mixtral always; Qwen with norm_topk_prob). As Transformers' MixtralTopKRouter/Qwen2MoeTopKRouter.
#pragma once

#include <cstdint>
#include <vector>

namespace shardlm::cpu {

// Each row's chosen experts, best first, and their weights: (rows, top_k) each.
struct ExpertRoutes {
  int top_k = 0;
  std::vector<int32_t> experts;
  std::vector<float> weights;
};

// logits: (n_rows, n_experts) f32.
ExpertRoutes route_top_k(const float* logits, int64_t n_rows, int n_experts, int top_k, bool normalize);

}  // namespace shardlm::cpu
