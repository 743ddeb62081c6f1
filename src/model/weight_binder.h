// Binds one weight of the checkpoint by its Hugging Face name to the view this rank uses: the whole
// tensor, or under tensor parallelism the rank's slice read in place (a rowwise slice keeps the
// stored row stride), with the strategy its plan entry gives it. Shared by the dense and the
// mixture-of-experts parts of a decoder layer (model/llama_weights.cpp, model/moe_weights.cpp).
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include "core/weight_view.h"
#include "io/safetensors.h"
#include "model/linear.h"
#include "model/tensor_parallel_rank.h"
#include "plan/tp_plan_strategy.h"

namespace shardlm {

class WeightBinder {
 public:
  WeightBinder(const Checkpoint& checkpoint, const TensorParallelRank* tp) : checkpoint_(checkpoint), tp_(tp) {}

  // The view this rank uses of `name`, whose stored shape must be `full_shape`.
  WeightView bind(const std::string& name, const std::vector<int64_t>& full_shape) const;

  TpStrategy strategy(const std::string& name) const;
  bool splits(const std::string& name) const { return strategy_traits(strategy(name)).weight_dim >= 0; }
  // Whether this rank holds `name` at all (expert parallelism gives each expert to one rank).
  bool holds(const std::string& name) const;

  // Refuses strategies this model does not execute for the module, by name.
  void require(const std::string& name, std::initializer_list<TpStrategy> executed) const;

  // Whether the plan all-reduces the output of `module` (an all_reduce or moe_tp_experts entry,
  // Transformers 4.5x "gather").
  bool all_reduces(const std::string& module) const;

  const TensorSlice& slice(const std::string& name) const { return tp_->plan->slice(name, tp_->rank); }
  bool parallel() const { return tp_ != nullptr; }
  const Checkpoint& checkpoint() const { return checkpoint_; }

 private:
  const Checkpoint& checkpoint_;
  const TensorParallelRank* tp_;
};

// A linear module `module` (its name without ".weight"): weight, bias when it has one, and the
// collective of its strategy.
Linear bind_linear(const WeightBinder& bind, const std::string& module, int64_t out_features, int64_t in_features,
                   bool has_bias, std::initializer_list<TpStrategy> executed);

}  // namespace shardlm
