#include "model/routed_experts.h"

#include <algorithm>

#include "ops/cpu/matmul.h"
#include "ops/cpu/swiglu.h"

namespace shardlm {

std::vector<float> swiglu(const float* x, int64_t m, const Linear& gate_proj, const Linear& up_proj) {
  const int64_t ff_dim = gate_proj.out_features();
  std::vector<float> gate(size_t(m * ff_dim)), up(size_t(m * ff_dim));
  cpu::matmul(x, m, gate_proj.weight, gate_proj.bias, gate.data());
  cpu::matmul(x, m, up_proj.weight, up_proj.bias, up.data());
  cpu::silu_mul(gate.data(), up.data(), m * ff_dim, gate.data());
  return gate;
}

std::vector<float> run_expert(const float* x, int64_t m, const ExpertWeights& expert) {
  const std::vector<float> activated = swiglu(x, m, expert.gate_proj, expert.up_proj);
  std::vector<float> out(size_t(m * expert.down_proj.out_features()));
  cpu::matmul(activated.data(), m, expert.down_proj.weight, WeightView{}, out.data());
  return out;
}

void add_routed_experts(const float* rows, const cpu::ExpertRoutes& routes, const SparseMoeWeights& moe, float* out) {
  const int64_t dim = moe.router.weight.cols;
  std::vector<std::vector<int64_t>> slots_of(size_t(moe.num_experts()));
  for (size_t slot = 0; slot < routes.experts.size(); ++slot)
    slots_of[size_t(routes.experts[slot])].push_back(int64_t(slot));
  std::vector<float> chosen;
  for (int e = 0; e < moe.num_experts(); ++e) {
    const std::vector<int64_t>& slots = slots_of[size_t(e)];
    if (slots.empty() || !moe.experts[size_t(e)].present()) continue;
    chosen.resize(slots.size() * size_t(dim));
    for (size_t i = 0; i < slots.size(); ++i)
      std::copy_n(rows + slots[i] / routes.top_k * dim, dim, chosen.data() + int64_t(i) * dim);
    const std::vector<float> expert_out = run_expert(chosen.data(), int64_t(slots.size()), moe.experts[size_t(e)]);
    for (size_t i = 0; i < slots.size(); ++i) {
      const float weight = routes.weights[size_t(slots[i])];
      float* row = out + slots[i] / routes.top_k * dim;
      for (int64_t j = 0; j < dim; ++j) row[j] += weight * expert_out[i * size_t(dim) + size_t(j)];
    }
  }
}

}  // namespace shardlm
