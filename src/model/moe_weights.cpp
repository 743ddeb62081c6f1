#include "model/moe_weights.h"

#include <fmt/format.h>

#include "core/error.h"

namespace shardlm {
namespace {

using S = TpStrategy;

ExpertWeights bind_expert(const WeightBinder& bind, const std::string& prefix, int64_t ff, int64_t dim,
                          std::initializer_list<TpStrategy> first, std::initializer_list<TpStrategy> last) {
  ExpertWeights expert;
  expert.gate_proj = bind_linear(bind, prefix + "gate_proj", ff, dim, false, first);
  expert.up_proj = bind_linear(bind, prefix + "up_proj", ff, dim, false, first);
  expert.down_proj = bind_linear(bind, prefix + "down_proj", dim, ff, false, last);
  if (expert.up_proj.out_features() != expert.ff_dim() || expert.down_proj.in_features() != expert.ff_dim())
    fail("tp plan: {}gate_proj, up_proj and down_proj hold {}, {} and {} intermediate features on this rank; they "
         "must be split alike (packed_colwise gate_up_proj with rowwise down_proj)",
         prefix, expert.ff_dim(), expert.up_proj.out_features(), expert.down_proj.in_features());
  return expert;
}

// Fails unless the checkpoint has expert `e`, naming the spellings it could have used.
void require_expert(const Checkpoint& checkpoint, const std::string& mlp, int il, int e) {
  for (const char* projection : {"gate_proj", "up_proj", "down_proj"}) {
    const std::string name = fmt::format("{}experts.{}.{}.weight", mlp, e, projection);
    if (checkpoint.find(name) == nullptr)
      fail("{}: missing expert tensor {} (expert {} of layer {}; also looked for Mixtral's "
           "block_sparse_moe.experts.{}.w1/w3/w2 and the fused mlp.experts.gate_up_proj/down_proj)",
           checkpoint.dir().string(), name, e, il, e);
  }
}

}  // namespace

SparseMoeWeights bind_sparse_moe(const ModelConfig& config, const WeightBinder& bind, int il) {
  const MoeConfig& moe_config = config.moe;
  const std::string block = fmt::format("model.layers.{}.mlp", il);
  const std::string mlp = block + ".";
  const int64_t dim = config.hidden_size, ff = moe_config.expert_intermediate_size;
  SparseMoeWeights moe;
  moe.top_k = moe_config.num_experts_per_tok;
  moe.norm_topk_prob = moe_config.norm_topk_prob;
  moe.router = bind_linear(bind, mlp + "gate", moe_config.num_experts, dim, false, {S::REPLICATE, S::EP_ROUTER});

  const std::initializer_list<TpStrategy> first = {S::REPLICATE, S::COLWISE, S::LOCAL_COLWISE, S::GROUPED_GEMM};
  const std::initializer_list<TpStrategy> last = {S::REPLICATE, S::ROWWISE, S::LOCAL_ROWWISE, S::GROUPED_GEMM};
  // Every expert's split is checked before any is bound, so each rank finds the same first fault.
  moe.experts.resize(size_t(moe_config.num_experts));
  std::optional<TpStrategy> down_strategy;
  for (int e = 0; e < moe_config.num_experts; ++e) {
    require_expert(bind.checkpoint(), mlp, il, e);
    const std::string prefix = fmt::format("{}experts.{}.", mlp, e);
    const bool held = bind.holds(prefix + "gate_proj.weight");
    if (bind.holds(prefix + "up_proj.weight") != held || bind.holds(prefix + "down_proj.weight") != held)
      fail("tp plan: {}gate_proj, up_proj and down_proj are not held by the same ranks (grouped_gemm must split "
           "gate_up_proj and down_proj alike)", prefix);
    const TpStrategy down = bind.strategy(prefix + "down_proj.weight");
    if (down_strategy && *down_strategy != down)
      fail("tp plan: the experts of {} are split differently ({} and {}); every expert of a layer must follow one entry",
           block, strategy_traits(*down_strategy).name, strategy_traits(down).name);
    down_strategy = down;
  }
  for (int e = 0; e < moe_config.num_experts; ++e) {
    const std::string prefix = fmt::format("{}experts.{}.", mlp, e);
    if (bind.holds(prefix + "gate_proj.weight")) moe.experts[size_t(e)] = bind_expert(bind, prefix, ff, dim, first, last);
  }
  moe.experts_partial = down_strategy == S::ROWWISE || down_strategy == S::LOCAL_ROWWISE || down_strategy == S::GROUPED_GEMM;

  // Local strategies leave the sum to an entry on the experts module (moe_tp_experts; 4.5x gather).
  const std::string experts = mlp + "experts";
  const bool summed_by_module = bind.all_reduces(experts);
  if ((down_strategy == S::LOCAL_ROWWISE || down_strategy == S::GROUPED_GEMM) && !summed_by_module)
    fail("tp plan: the experts of {} are {}, but no moe_tp_experts entry sums the output of {}", block,
         strategy_traits(*down_strategy).name, experts);
  if (summed_by_module && !moe.experts_partial)
    fail("tp plan: {} is summed over the ranks, but its experts are whole on every rank (the sum would count them tp "
         "times): split them (packed_colwise/rowwise or grouped_gemm)", experts);
  if (bind.all_reduces(block))
    fail("tp plan: {} is a mixture of experts; sum its experts with moe_tp_experts on {} instead", block, experts);

  if (moe_config.shared_expert_intermediate_size > 0) {
    moe.shared_expert = bind_expert(bind, mlp + "shared_expert.", moe_config.shared_expert_intermediate_size, dim,
                                    {S::REPLICATE, S::COLWISE}, {S::REPLICATE, S::ROWWISE});
    moe.shared_expert_gate = bind_linear(bind, mlp + "shared_expert_gate", 1, dim, false, {S::REPLICATE});
  }
  return moe;
}

}  // namespace shardlm
