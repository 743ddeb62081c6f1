// The experts of a mixture-of-experts layer on the GPU, over the (row, slot) pairs that
// launch_group_by_expert grouped (ops/cuda/moe_routing.h): for each expert, its gate/up and down
// weights are read once per group of pairs that chose it, so a decode step reads only the chosen
// experts (the active bytes) and a batch reads each chosen expert once for all its rows.
//   launch_routed_experts:  out[row] += Σ_slot weight[pair] · down_e(silu(gate_e x[row]) * up_e x[row])
//                           (e the slot's expert, pair = row · top_k + slot); a batch sums the slots in
//                           order, one row's kernel in another (f32) order
//   launch_shared_expert_add: out[row] += sigmoid(gate · x[row]) · shared_out[row] (Qwen2-MoE)
// Weights are bf16, fused over the experts as Transformers 5 holds them: gate_up (E, 2·ff, hidden),
// gate rows then up rows, and down (E, hidden, ff); with expert parallelism, this rank's experts
// [first_expert, first_expert + n_local_experts) only.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace shardlm::cuda {

// Pairs a warp of a batch's expert kernels takes at once: an expert's weights are read once per this
// many of its pairs.
constexpr int kExpertPairsPerPass = 8;

struct ExpertMlpParams {
  const __nv_bfloat16* x = nullptr;  // (n_rows, hidden): the normalised rows
  int n_rows = 0, top_k = 0, hidden = 0, ff = 0;
  int n_experts = 0;  // of the layer; offsets has n_experts + 1 entries
  int first_expert = 0, n_local_experts = 0;
  const int32_t* offsets = nullptr;  // from launch_group_by_expert, indexed by global expert id
  const int32_t* pairs = nullptr;
  const int32_t* active = nullptr;   // from launch_group_by_expert: the chosen experts, then -1s
  const __nv_bfloat16* gate_up = nullptr;  // (n_local_experts, 2 ff, hidden)
  const __nv_bfloat16* down = nullptr;     // (n_local_experts, hidden, ff)
  __nv_bfloat16* activated = nullptr;      // scratch (n_rows · top_k, ff)
  float* expert_out = nullptr;             // (n_rows · top_k, hidden); pairs of other ranks' experts untouched
};

struct ExpertCombineParams {
  const float* expert_out = nullptr;  // (n_rows · top_k, hidden)
  const float* weights = nullptr;     // (n_rows, top_k), from launch_route_top_k
  const int32_t* experts = nullptr;   // (n_rows, top_k)
  int n_rows = 0, top_k = 0, hidden = 0;
  int first_expert = 0, end_expert = 0;  // slots whose expert is elsewhere add nothing here
  float* out = nullptr;                  // (n_rows, hidden) f32, added to
};
// hidden and ff must be multiples of 8 and the pointers 16-byte aligned. One row's step reads its
// slots' experts from combine.experts (offsets, pairs and active unused: it needs no grouping) and
// runs its down projections and the combine as one kernel (expert_out unused); a batch computes
// expert_out pair by pair over the grouping, then combines. Grids have a block row per possible
// chosen expert (at most n_rows · top_k), not per expert, so that a decode step's launch costs what
// its chosen experts do.
void launch_routed_experts(const ExpertMlpParams& params, const ExpertCombineParams& combine, cudaStream_t stream);
// Refuses what the expert kernels cannot read: sizes that are not a multiple of 8 elements, buffers
// not 16-byte aligned, a rank's expert range [first_expert, first_expert + n_local_experts)
// outside the layer's.
void check_expert_operands(const ExpertMlpParams& params);

// Prompt passes run the experts as grouped GEMMs (ops/cuda/expert_grouped_gemm.h) over the pairs'
// rows in expert order, which these two kernels make and undo:
//   launch_gather_expert_rows: rows[i] = x[pairs[i] / top_k] and positions[pairs[i]] = i, i < n_grouped
//   launch_grouped_expert_combine: out[row] += Σ_slot weight[pair] · grouped_out[positions[pair]]
struct GatherExpertRowsParams {
  const __nv_bfloat16* x = nullptr;  // (n_rows, hidden)
  const int32_t* pairs = nullptr;    // from launch_group_by_expert
  int n_grouped = 0, top_k = 0, hidden = 0;
  __nv_bfloat16* rows = nullptr;  // (n_grouped, hidden)
  int32_t* positions = nullptr;   // (n_rows · top_k); pairs of other ranks' experts untouched
};
void launch_gather_expert_rows(const GatherExpertRowsParams& params, cudaStream_t stream);

struct GroupedExpertCombineParams {
  const __nv_bfloat16* grouped_out = nullptr;  // (n_grouped, hidden), in expert order
  const int32_t* positions = nullptr;          // from launch_gather_expert_rows
  const float* weights = nullptr;              // (n_rows, top_k)
  const int32_t* experts = nullptr;            // (n_rows, top_k)
  int n_rows = 0, top_k = 0, hidden = 0;
  int first_expert = 0, end_expert = 0;  // slots whose expert is elsewhere add nothing here
  float* out = nullptr;                  // (n_rows, hidden) f32, added to
};
void launch_grouped_expert_combine(const GroupedExpertCombineParams& params, cudaStream_t stream);

// Qwen2-MoE's shared expert joining the experts' sum: out[row] += sigmoid(gate · x[row]) ·
// shared_out[row], the gate (1, hidden) a linear without bias.
struct SharedExpertAddParams {
  const __nv_bfloat16* x = nullptr;           // (n_rows, hidden): the normalised rows
  const __nv_bfloat16* gate = nullptr;        // (hidden)
  const __nv_bfloat16* shared_out = nullptr;  // (n_rows, hidden): the shared expert's output
  int n_rows = 0, hidden = 0;
  float* out = nullptr;                       // (n_rows, hidden) f32, added to
};
void launch_shared_expert_add(const SharedExpertAddParams& params, cudaStream_t stream);

// out[i] += delta[i] (f32): the ranks' summed expert outputs joining the residual stream.
void launch_add_f32(float* out, const float* delta, int64_t count, cudaStream_t stream);

}  // namespace shardlm::cuda
