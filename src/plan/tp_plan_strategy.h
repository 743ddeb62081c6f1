// Tensor-parallel strategies by name. The names are those of Transformers 5's ParallelInterface
// (integrations/tensor_parallel.py), so a tp_plan written for Transformers means the same here;
// the Transformers 4.5x names that were renamed or folded into others are accepted as aliases.
// Each strategy fixes how a module's weights are split over the "tp" mesh dimension and what
// collective its output needs: that is all the model has to know to run it.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "plan/placement.h"

namespace shardlm {

enum class TpStrategy {
  COLWISE,                // Linear split on out_features: weight Shard(0), bias Shard(0); output stays sharded
  ROWWISE,                // Linear split on in_features: weight Shard(1), bias Replicate; output Partial -> all-reduce
  COLWISE_GATHER_OUTPUT,  // colwise, then all-gather the output (the LM head); 4.5x: colwise_rep
  ROWWISE_SPLIT_INPUT,    // rowwise whose input arrives replicated, so each rank takes its columns; 4.5x: rowwise_rep
  PACKED_COLWISE,         // colwise over a fused weight (qkv_proj, gate_up_proj), each component split separately
  PACKED_ROWWISE,         // rowwise over a weight fused along in_features
  EMBEDDING_ROWWISE,      // vocabulary-parallel embedding: table Shard(0), masked lookup, output Partial -> all-reduce
  EMBEDDING_COLWISE,      // embedding split on the hidden dimension: Shard(1), output all-gathered
  SEQUENCE_PARALLEL,      // weights replicated (norms); activations sharded on the token dimension
  REPLICATE,              // whole weight on every rank; also replicated_with_grad_allreduce (Qwen3 q/k norms)
  LOCAL_COLWISE,          // colwise with no collective: an enclosing all_reduce module completes it
  LOCAL_ROWWISE,          // rowwise with no collective: an enclosing all_reduce module completes it
  LOCAL_PACKED_ROWWISE,   // packed_rowwise with no collective
  ALL_REDUCE,             // module-level: all-reduce the module's output (4.5x: gather); owns no weights
  MOE_TP_EXPERTS,         // module-level on mlp.experts: all-reduce the experts' partial sums
  GROUPED_GEMM,           // expert parallelism: each rank holds E / tp whole experts
  EP_ROUTER,              // the router under expert parallelism: whole on every rank
};

// What the model does with its module output after the local matmul.
enum class TpCollective { NONE, ALL_REDUCE, ALL_GATHER };

struct TpStrategyTraits {
  TpStrategy strategy;
  std::string_view name;     // canonical (Transformers 5) name
  int weight_dim;            // tensor dimension of a 2-D weight that is split; -1: replicated
  bool shards_bias;          // 1-D parameters split along dim 0 like the weight's rows (else replicated)
  bool packed;               // the split dimension holds several components, each split separately
  bool may_split_unevenly;   // output is gathered or summed back to full size, so shards may be padded
  bool module_level;         // applies to a parent module, never to weights
  Placement output;          // the module output's placement over "tp" before the collective
  TpCollective collective;   // what turns the output back into a replicated activation
};

const TpStrategyTraits& strategy_traits(TpStrategy strategy);

// Accepts the canonical names and the 4.5x aliases (colwise_rep, rowwise_rep, replicate, gather,
// replicated_with_grad_allreduce); nullopt for anything else.
std::optional<TpStrategy> parse_strategy(std::string_view name);
// The names parse_strategy accepts, for error messages.
std::vector<std::string_view> strategy_names();
// Transformers strategies for layers shardlm's architectures do not have (MLA, other MoE routers),
// so that a plan copied from such a model fails with a reason instead of "unknown".
bool is_unsupported_transformers_strategy(std::string_view name);
// Strategies that only apply to mixture-of-experts layers.
bool is_expert_strategy(TpStrategy strategy);

}  // namespace shardlm
