#include "model/routed_experts.h"

#include <algorithm>

#include "ops/cpu/matmul.h"
#include "ops/cpu/swiglu.h"

namespace shardlm {

std::vector<float> swiglu(const float* x, int64_t m, const Linear& gate_proj, const Linear& up_proj) {
  const int64_t ff_dim = gate_proj.out_features();
  std::vector<float> gate(size_t(m * ff_dim)), up(size_t(m * ff_dim));
  const cpu::MatmulProblem products[] = {{x, m, gate_proj.weight, gate_proj.bias, gate.data()},
                                         {x, m, up_proj.weight, up_proj.bias, up.data()}};
  cpu::matmul_group(products);
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

  // The chosen experts held here, each with its rows gathered in expert order: (pairs, dim).
  struct Chosen {
    const ExpertWeights* expert;
    const std::vector<int64_t>* slots;
    int64_t first_pair;    // its rows' place among the gathered pairs
    int64_t first_hidden;  // its intermediate rows' place: Σ pairs · ff of the experts before it
  };
  std::vector<Chosen> chosen;
  int64_t pairs = 0, hidden = 0;
  for (int e = 0; e < moe.num_experts(); ++e) {
    const ExpertWeights& expert = moe.experts[size_t(e)];
    if (slots_of[size_t(e)].empty() || !expert.present()) continue;
    chosen.push_back({&expert, &slots_of[size_t(e)], pairs, hidden});
    pairs += int64_t(slots_of[size_t(e)].size());
    hidden += int64_t(slots_of[size_t(e)].size()) * expert.ff_dim();
  }
  std::vector<float> gathered(size_t(pairs * dim));
  for (const Chosen& each : chosen)
    for (size_t i = 0; i < each.slots->size(); ++i)
      std::copy_n(rows + (*each.slots)[i] / routes.top_k * dim, dim, gathered.data() + (each.first_pair + int64_t(i)) * dim);

  // Every chosen expert's gate and up projections in one group, then every down projection in
  // another: at batch 1 a layer's eight or so small experts keep all cores busy together.
  std::vector<float> gate(static_cast<size_t>(hidden)), up(static_cast<size_t>(hidden)), expert_out(size_t(pairs * dim));
  std::vector<cpu::MatmulProblem> products;
  for (const Chosen& each : chosen) {
    const float* x = gathered.data() + each.first_pair * dim;
    const int64_t m = int64_t(each.slots->size());
    products.push_back({x, m, each.expert->gate_proj.weight, each.expert->gate_proj.bias, gate.data() + each.first_hidden});
    products.push_back({x, m, each.expert->up_proj.weight, each.expert->up_proj.bias, up.data() + each.first_hidden});
  }
  cpu::matmul_group(products);
  cpu::silu_mul(gate.data(), up.data(), hidden, gate.data());
  products.clear();
  for (const Chosen& each : chosen)
    products.push_back({gate.data() + each.first_hidden, int64_t(each.slots->size()), each.expert->down_proj.weight,
                        WeightView{}, expert_out.data() + each.first_pair * dim});
  cpu::matmul_group(products);

  // Each row gets its experts' outputs in expert order, as one expert at a time would add them.
  for (const Chosen& each : chosen)
    for (size_t i = 0; i < each.slots->size(); ++i) {
      const int64_t slot = (*each.slots)[i];
      const float weight = routes.weights[size_t(slot)];
      float* row = out + slot / routes.top_k * dim;
      const float* result = expert_out.data() + (each.first_pair + int64_t(i)) * dim;
      for (int64_t j = 0; j < dim; ++j) row[j] += weight * result[j];
    }
}

}  // namespace shardlm
