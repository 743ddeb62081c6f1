// A sparse MLP's routed experts on the CPU (f32 over the weights' stored dtypes): each expert this
// rank holds runs once over the rows that chose it, in expert order (as Transformers' eager loop
// adds them), and each row gets its experts' outputs scaled by its routing weights. The CPU layer
// ops run their experts here, and so does the CUDA model for experts kept in cpu memory
// (--cpu-moe), so the two compute them alike.
#pragma once

#include <cstdint>
#include <vector>

#include "model/linear.h"
#include "model/moe_weights.h"
#include "ops/cpu/expert_routing.h"

namespace shardlm {

// silu(gate_proj(x)) * up_proj(x) for m rows x: (m, gate_proj's out_features).
std::vector<float> swiglu(const float* x, int64_t m, const Linear& gate_proj, const Linear& up_proj);

// swiglu, then down_proj: (m, down_proj's out_features).
std::vector<float> run_expert(const float* x, int64_t m, const ExpertWeights& expert);

// out (n_rows, hidden) += for every row, Σ over its chosen experts held here: weight · expert(row).
// rows: (n_rows, hidden), the normalised rows; routes: n_rows · top_k choices.
void add_routed_experts(const float* rows, const cpu::ExpertRoutes& routes, const SparseMoeWeights& moe, float* out);

}  // namespace shardlm
