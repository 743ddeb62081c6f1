// Routing for mixture-of-experts layers on the GPU, without a host sync (so a decode step stays one
// CUDA graph): each row's top-k experts from its router logits (ops/cpu/expert_routing.h's rule:
// softmax in f32, top-k with ties to the lower id, optionally renormalised), then the (row, slot)
// pairs grouped by expert, so that each expert's weights are read once for all the rows that chose
// it (ops/cuda/expert_mlp.h).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace shardlm::cuda {

// The most experts a layer may have here: routing keeps a row's probabilities in a warp's registers
// (32 a lane), and grouping the experts' counts in shared memory.
constexpr int kMaxExperts = 1024;
constexpr int kMaxTopK = 16;

struct RouteParams {
  const float* logits = nullptr;  // (n_rows, n_experts)
  int n_rows = 0, n_experts = 0, top_k = 0;
  bool normalize = true;
  int32_t* experts = nullptr;  // (n_rows, top_k), best first
  float* weights = nullptr;    // (n_rows, top_k)
};
void launch_route_top_k(const RouteParams& params, cudaStream_t stream);

// Pair p = row * top_k + slot chose experts[p]. offsets (n_experts + 1): pairs of expert e are
// pairs[offsets[e] .. offsets[e + 1]), in no particular order within an expert. Pairs whose expert
// lies outside [first_expert, end_expert) (held by other ranks) are left out. active
// (end_expert - first_expert): the experts that have pairs, in order, then -1s, so that a kernel
// launched before the choices are known (a CUDA graph) spends its blocks on chosen experts only.
struct GroupParams {
  const int32_t* experts = nullptr;
  int n_pairs = 0, n_experts = 0;
  int first_expert = 0, end_expert = 0;
  int32_t* offsets = nullptr;
  int32_t* pairs = nullptr;
  int32_t* active = nullptr;
};
void launch_group_by_expert(const GroupParams& params, cudaStream_t stream);

// Both, group.experts being route.experts: in one launch (one block) for up to kFusedRouteMaxRows
// rows over at most kFusedRouteMaxExperts experts, since at a decode step's size a launch costs
// about what the work does; otherwise the two launches above.
constexpr int kFusedRouteMaxRows = 64;
constexpr int kFusedRouteMaxExperts = 256;
void launch_route_and_group(const RouteParams& route, const GroupParams& group, cudaStream_t stream);

}  // namespace shardlm::cuda
