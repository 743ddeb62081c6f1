#include "model/routed_experts.h"

#include <algorithm>
#include <span>

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

namespace {

// Pairs (a row and one of its experts) whose scratch a group of experts holds at once: at batch 1
// every chosen expert fits in one group; a long prompt's pairs go through in groups of at most this
// many (its experts' rows, gate/up values and outputs: about 40 MiB at Qwen3-30B-A3B's widths), an
// expert chosen more often in several pieces.
constexpr int64_t kPairsPerGroup = 2048;

// One chosen expert held here (or a piece of its pairs), and where they lie in the group's scratch.
struct ChosenExpert {
  const ExpertWeights* expert;
  std::span<const int64_t> slots;  // its pairs, as indices into the routes
  int64_t first_pair;              // its rows' place among the group's gathered rows
  int64_t first_intermediate;      // its gate/up values' place: Σ pairs · ff of the experts before it
};

// A group's scratch: its gathered rows, gate/up values and outputs. Each thread that runs experts
// keeps its own between calls (at most a group's worth). A long prompt's groups take tens of MiB,
// and a fresh allocation of that size is fresh pages, which the kernel faulted in and zeroed (and
// the vectors zeroed again, on one thread) for every group of every layer: without it, a
// 1,024-token prefill of a Qwen3-MoE shape took 1.3-1.45x as long on the dev machine.
struct GroupScratch {
  std::vector<float> gathered, gate, up, expert_out;
};
thread_local GroupScratch group_scratch;

// `buffer` grown to at least n values; grown, never shrunk, so that later groups reuse its pages.
// Its old values are never read again: cleared first, growing copies nothing and reserves no more.
float* at_least(std::vector<float>& buffer, int64_t n) {
  if (buffer.size() < size_t(n)) {
    buffer.clear();
    buffer.resize(size_t(n));
  }
  return buffer.data();
}

// out += each pair's weight · its expert's output, for a group of chosen experts: every gate and up
// projection as one matmul group, then every down projection as another, so that a decode step's
// eight or so small experts keep all cores busy together.
void add_expert_group(const float* rows, const cpu::ExpertRoutes& routes, int64_t dim,
                      const std::vector<ChosenExpert>& group, int64_t pairs, int64_t intermediate, float* out) {
  GroupScratch& scratch = group_scratch;
  float* gathered = at_least(scratch.gathered, pairs * dim);
  float* gate = at_least(scratch.gate, intermediate);
  float* up = at_least(scratch.up, intermediate);
  float* expert_out = at_least(scratch.expert_out, pairs * dim);
  for (const ChosenExpert& each : group)
    for (size_t i = 0; i < each.slots.size(); ++i)
      std::copy_n(rows + each.slots[i] / routes.top_k * dim, dim, gathered + (each.first_pair + int64_t(i)) * dim);
  std::vector<cpu::MatmulProblem> products;
  for (const ChosenExpert& each : group) {
    const float* x = gathered + each.first_pair * dim;
    const int64_t m = int64_t(each.slots.size());
    const ExpertWeights& expert = *each.expert;
    products.push_back({x, m, expert.gate_proj.weight, expert.gate_proj.bias, gate + each.first_intermediate});
    products.push_back({x, m, expert.up_proj.weight, expert.up_proj.bias, up + each.first_intermediate});
  }
  cpu::matmul_group(products);
  cpu::silu_mul(gate, up, intermediate, gate);
  products.clear();
  for (const ChosenExpert& each : group)
    products.push_back({gate + each.first_intermediate, int64_t(each.slots.size()), each.expert->down_proj.weight,
                        WeightView{}, expert_out + each.first_pair * dim});
  cpu::matmul_group(products);
  // Each row gets its experts' outputs in expert order, as one expert at a time would add them.
  for (const ChosenExpert& each : group)
    for (size_t i = 0; i < each.slots.size(); ++i) {
      const int64_t slot = each.slots[i];
      float* row = out + slot / routes.top_k * dim;
      const float* result = expert_out + (each.first_pair + int64_t(i)) * dim;
      for (int64_t j = 0; j < dim; ++j) row[j] += routes.weights[size_t(slot)] * result[j];
    }
}

}  // namespace

void add_routed_experts(const float* rows, const cpu::ExpertRoutes& routes, const SparseMoeWeights& moe, float* out) {
  const int64_t dim = moe.router.weight.cols;
  std::vector<std::vector<int64_t>> slots_of(size_t(moe.num_experts()));
  for (size_t slot = 0; slot < routes.experts.size(); ++slot)
    slots_of[size_t(routes.experts[slot])].push_back(int64_t(slot));
  // The chosen experts in expert order, in groups of at most kPairsPerGroup pairs. A row meets each
  // expert once, so splitting an expert's pairs keeps every row's sum in expert order.
  std::vector<ChosenExpert> group;
  int64_t pairs = 0, intermediate = 0;
  for (int e = 0; e < moe.num_experts(); ++e) {
    const ExpertWeights& expert = moe.experts[size_t(e)];
    std::span<const int64_t> slots = slots_of[size_t(e)];
    if (!expert.present()) continue;
    while (!slots.empty()) {
      if (pairs == kPairsPerGroup) {
        add_expert_group(rows, routes, dim, group, pairs, intermediate, out);
        group.clear();
        pairs = intermediate = 0;
      }
      const std::span<const int64_t> piece = slots.first(std::min(slots.size(), size_t(kPairsPerGroup - pairs)));
      group.push_back({&expert, piece, pairs, intermediate});
      pairs += int64_t(piece.size());
      intermediate += int64_t(piece.size()) * expert.ff_dim();
      slots = slots.subspan(piece.size());
    }
  }
  if (!group.empty()) add_expert_group(rows, routes, dim, group, pairs, intermediate, out);
}

}  // namespace shardlm
