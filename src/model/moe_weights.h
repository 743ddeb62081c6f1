// The sparse MLP of a mixture-of-experts layer (Mixtral, Qwen2-MoE, Qwen3-MoE) as one rank holds it:
// the router, every expert's SwiGLU projections (views into the checkpoint, whichever way it
// stored them: io/expert_tensors.h) and Qwen2-MoE's gated shared expert. Under tensor parallelism
// each expert is split like an MLP (gate/up rows, down columns) and the experts' sum is a partial
// sum; under expert parallelism each rank holds E / tp whole experts and the others are absent.
#pragma once

#include <optional>
#include <vector>

#include "io/model_config.h"
#include "model/linear.h"
#include "model/weight_binder.h"

namespace shardlm {

struct ExpertWeights {
  Linear gate_proj;  // (ff, dim): the expert's intermediate rows, or this rank's part of them
  Linear up_proj;    // (ff, dim)
  Linear down_proj;  // (dim, ff)

  bool present() const { return gate_proj.weight.present(); }
  int64_t ff_dim() const { return gate_proj.out_features(); }
};

struct SparseMoeWeights {
  Linear router;                       // mlp.gate (num_experts, dim), whole on every rank
  std::vector<ExpertWeights> experts;  // by expert id; with expert parallelism only this rank's are present
  int top_k = 0;
  bool norm_topk_prob = true;          // renormalise the top-k routing weights
  // Qwen2-MoE: an MLP every token takes, scaled by sigmoid(shared_expert_gate · x).
  std::optional<ExpertWeights> shared_expert;
  Linear shared_expert_gate;           // (1, dim)
  // Whether this rank's sum over its experts is a partial sum that the ranks add up: the experts'
  // down_proj split by columns, or the experts split between the ranks.
  bool experts_partial = false;

  int num_experts() const { return int(experts.size()); }
};

// Binds layer `il`'s sparse MLP, checking every shape against config.json; fails naming the layer
// for a missing expert, and the plan entry for a split this model does not run.
SparseMoeWeights bind_sparse_moe(const ModelConfig& config, const WeightBinder& bind, int il);

}  // namespace shardlm
