// The strategy table. Placements follow Transformers 5's ColwiseParallel/RowwiseParallel/
// EmbeddingParallel classes: colwise shards a weight's dim -2 (rows, out_features) and its bias,
// rowwise shards dim -1 (columns, in_features) and replicates its bias, which must be added once,
// after the all-reduce.
#include "plan/tp_plan_strategy.h"

#include <array>

namespace shardlm {
namespace {

using P = Placement;
using C = TpCollective;

// clang-format off
const std::array<TpStrategyTraits, 17> kStrategies = {{
  // strategy                        name                     dim  bias   packed uneven module output          collective
  {TpStrategy::COLWISE,               "colwise",                 0, true,  false, false, false, P::shard(-1),  C::NONE},
  {TpStrategy::ROWWISE,               "rowwise",                 1, false, false, false, false, P::partial(),  C::ALL_REDUCE},
  {TpStrategy::COLWISE_GATHER_OUTPUT, "colwise_gather_output",   0, true,  false, true,  false, P::shard(-1),  C::ALL_GATHER},
  {TpStrategy::ROWWISE_SPLIT_INPUT,   "rowwise_split_input",     1, false, false, false, false, P::partial(),  C::ALL_REDUCE},
  {TpStrategy::PACKED_COLWISE,        "packed_colwise",          0, true,  true,  false, false, P::shard(-1),  C::NONE},
  {TpStrategy::PACKED_ROWWISE,        "packed_rowwise",          1, false, true,  false, false, P::partial(),  C::ALL_REDUCE},
  {TpStrategy::EMBEDDING_ROWWISE,     "embedding_rowwise",       0, false, false, true,  false, P::partial(),  C::ALL_REDUCE},
  {TpStrategy::EMBEDDING_COLWISE,     "embedding_colwise",       1, false, false, true,  false, P::shard(-1),  C::ALL_GATHER},
  {TpStrategy::SEQUENCE_PARALLEL,     "sequence_parallel",     -1, false, false, false, false, P::shard(0),   C::NONE},
  {TpStrategy::REPLICATE,             "replicate",             -1, false, false, false, false, P::replicate(), C::NONE},
  {TpStrategy::LOCAL_COLWISE,         "local_colwise",           0, true,  false, false, false, P::shard(-1),  C::NONE},
  {TpStrategy::LOCAL_ROWWISE,         "local_rowwise",           1, false, false, false, false, P::partial(),  C::NONE},
  {TpStrategy::LOCAL_PACKED_ROWWISE,  "local_packed_rowwise",    1, false, true,  false, false, P::partial(),  C::NONE},
  {TpStrategy::ALL_REDUCE,            "all_reduce",            -1, false, false, false, true,  P::partial(),  C::ALL_REDUCE},
  {TpStrategy::MOE_TP_EXPERTS,        "moe_tp_experts",        -1, false, false, false, true,  P::partial(),  C::ALL_REDUCE},
  {TpStrategy::GROUPED_GEMM,          "grouped_gemm",          -1, false, false, false, false, P::partial(),  C::NONE},
  {TpStrategy::EP_ROUTER,             "ep_router",             -1, false, false, false, false, P::replicate(), C::NONE},
}};
// clang-format on

struct Alias {
  std::string_view name;
  TpStrategy strategy;
};

// Transformers 4.5x names, and the Transformers 5 name that means "replicate" at inference.
const std::array<Alias, 4> kAliases = {{
    {"colwise_rep", TpStrategy::COLWISE_GATHER_OUTPUT},
    {"rowwise_rep", TpStrategy::ROWWISE_SPLIT_INPUT},
    {"replicated_with_grad_allreduce", TpStrategy::REPLICATE},
    {"gather", TpStrategy::ALL_REDUCE},  // 4.5x GatherParallel all-reduces the module output
}};

const std::array<std::string_view, 6> kUnsupported = {
    "megamoe_router", "megamoe_experts", "moe_identity_expert", "mla_kv_a_proj", "local", "isolated"};

}  // namespace

const TpStrategyTraits& strategy_traits(TpStrategy strategy) { return kStrategies[size_t(strategy)]; }

std::optional<TpStrategy> parse_strategy(std::string_view name) {
  for (const TpStrategyTraits& traits : kStrategies) {
    if (traits.name == name) return traits.strategy;
  }
  for (const Alias& alias : kAliases) {
    if (alias.name == name) return alias.strategy;
  }
  return std::nullopt;
}

std::vector<std::string_view> strategy_names() {
  std::vector<std::string_view> names;
  for (const TpStrategyTraits& traits : kStrategies) names.push_back(traits.name);
  for (const Alias& alias : kAliases) names.push_back(alias.name);
  return names;
}

bool is_expert_strategy(TpStrategy strategy) {
  return strategy == TpStrategy::MOE_TP_EXPERTS || strategy == TpStrategy::GROUPED_GEMM || strategy == TpStrategy::EP_ROUTER;
}

bool is_unsupported_transformers_strategy(std::string_view name) {
  for (std::string_view unsupported : kUnsupported) {
    if (unsupported == name) return true;
  }
  return false;
}

}  // namespace shardlm
