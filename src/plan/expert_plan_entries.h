// Transformers 5 plans name a mixture-of-experts layer's experts as it holds them in memory, fused
// (mlp.experts.gate_up_proj [E, 2I, H], mlp.experts.down_proj [E, H, I]), and Transformers 4.5x
// plans named them per expert, Mixtral's as block_sparse_moe.experts.*.w1. A Checkpoint presents
// every expert per expert under Qwen's names (io/expert_tensors.h), so each plan entry is rewritten
// to those names before it is matched:
//   experts.gate_up_proj: packed_colwise -> experts.*.gate_proj and experts.*.up_proj: colwise
//     (packing splits the gate rows and the up rows separately, which is what each colwise does)
//   experts.down_proj: rowwise / local_rowwise -> experts.*.down_proj: the same
//   experts.gate_up_proj / down_proj: grouped_gemm -> experts.*.{gate,up,down}_proj: grouped_gemm
//   experts.gate_up_proj / down_proj: replicate -> the same per expert
// and entries for other modules (the router's ep_router, the experts' moe_tp_experts, attention)
// pass through with Mixtral's spelling replaced. A strategy that cannot split a fused tensor right
// (plain colwise would hand rank 0 all the gate rows and rank 1 all the up rows) is refused by name.
#pragma once

#include <string>
#include <vector>

#include "plan/tp_plan_source.h"

namespace shardlm {

// `label` starts error messages ("tp plan", "tp plan FILE").
std::vector<TpPlanEntry> per_expert_entries(const std::vector<TpPlanEntry>& entries, const std::string& label);

}  // namespace shardlm
