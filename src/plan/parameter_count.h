// How big a model is, and how much of it one token reads: in a mixture-of-experts model each token
// takes num_experts_per_tok of a layer's experts, so a decode step reads the active bytes, not all
// of them (the floor of its time per token on a bandwidth-bound device). From tensor names, shapes
// and dtypes alone: a checkpoint's header or a --random shape.
#pragma once

#include <cstdint>
#include <vector>

#include "io/model_config.h"
#include "plan/tp_plan.h"

namespace shardlm {

struct ParameterCount {
  int64_t total = 0;             // every stored parameter
  int64_t active = 0;            // what one token uses: everything but the experts it does not choose
  int64_t total_bytes = 0;
  int64_t active_bytes = 0;
  int64_t bytes_per_expert = 0;  // one expert of one layer (gate, up and down), as stored; 0 when dense
  int64_t expert_bytes = 0;      // every expert of every layer
};

ParameterCount count_parameters(const ModelConfig& config, const std::vector<WeightSpec>& weights);

// What a decode step of `rows` rows reads when the router spreads them evenly and independently
// (what a trained router's load balancing aims at): every weight but the experts, and each expert
// with the chance that some row chose it, 1 - (1 - top_k / num_experts)^rows. One row reads the
// active bytes; Qwen3-30B-A3B's 16 rows read about 10 of its 128 experts' share for each 1 that
// one row reads.
double decode_step_bytes(const ParameterCount& count, const MoeConfig& moe, int rows);

}  // namespace shardlm
