// One warp routes one row: its lanes hold the row's probabilities in registers, the softmax's max
// and sum are warp reductions, and each of the top_k picks is a warp argmax that then removes its
// winner. Grouping runs in one block: a histogram of the experts, its prefix sum (a warp scan) with
// the list of chosen experts, and a scatter of the pair ids. For a decode step's few rows one block
// does both.
#include <type_traits>

#include "core/cuda/cuda_check.h"
#include "ops/cuda/common.cuh"
#include "ops/cuda/moe_routing.h"
#include "ops/cuda/pdl.cuh"

namespace shardlm::cuda {

// ---------------------------------------------------------------------------------------------
// kernels

constexpr int kRouteWarps = 4;
constexpr int kFusedRouteWarps = 32;

// One warp routes `row`: lane l holds the probabilities of experts l, l + 32, ... in registers
// (kPerLane of them, n_experts <= 32 kPerLane), and after pick k lane k keeps the k-th expert and its
// probability, so the lanes write the row's picks side by side. (With the probabilities in shared
// memory, the logits read twice and one lane writing every pick, routing one row took about 4.5 us
// of a Qwen3-30B-A3B layer's decode on an H100.)
template <int kPerLane>
__device__ void route_row(const RouteParams& p, int row) {
  const int lane = threadIdx.x % 32;
  const float* logits = p.logits + int64_t(row) * p.n_experts;
  float prob[kPerLane];
  float largest = -INFINITY;
#pragma unroll
  for (int i = 0; i < kPerLane; ++i) {
    const int e = lane + 32 * i;
    prob[i] = e < p.n_experts ? logits[e] : -INFINITY;
    largest = fmaxf(largest, prob[i]);
  }
  largest = warp_max(largest);
  // As the CPU ranks them: exp then divided by the sum. A NaN logit (a broken model) ranks as 0, so
  // every pick is a real expert; its NaN still reaches the output, where sampling reports it.
  // Slots past the experts hold -2, below every real probability and every pick's starting best.
  float total = 0.0f;
#pragma unroll
  for (int i = 0; i < kPerLane; ++i) {
    if (lane + 32 * i >= p.n_experts) {
      prob[i] = -2.0f;
      continue;
    }
    const float value = expf(prob[i] - largest);
    prob[i] = isnan(value) ? 0.0f : value;
    total += value;
  }
  total = warp_sum(total);
#pragma unroll
  for (int i = 0; i < kPerLane; ++i) {
    if (lane + 32 * i >= p.n_experts) continue;
    const float share = prob[i] / total;
    prob[i] = isnan(share) ? 0.0f : share;
  }
  float chosen_sum = 0.0f, my_prob = 0.0f;
  int my_id = 0;
  for (int k = 0; k < p.top_k; ++k) {
    float best = -1.0f;
    int best_id = INT32_MAX;
#pragma unroll
    for (int i = 0; i < kPerLane; ++i) {
      const int e = lane + 32 * i;
      if (prob[i] > best || (prob[i] == best && e < best_id)) {
        best = prob[i];
        best_id = e;
      }
    }
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) {
      const float other = __shfl_xor_sync(0xffffffffu, best, offset);
      const int other_id = __shfl_xor_sync(0xffffffffu, best_id, offset);
      if (other > best || (other == best && other_id < best_id)) {
        best = other;
        best_id = other_id;
      }
    }
    if (best_id >= p.n_experts) best_id = 0;  // unreachable while k <= n_experts
    chosen_sum += best;
    if (lane == k) {
      my_prob = best;
      my_id = best_id;
    }
#pragma unroll
    for (int i = 0; i < kPerLane; ++i)
      if (lane + 32 * i == best_id) prob[i] = -2.0f;  // taken: below every lane's starting best
  }
  if (lane >= p.top_k) return;
  p.experts[int64_t(row) * p.top_k + lane] = my_id;
  p.weights[int64_t(row) * p.top_k + lane] = p.normalize ? my_prob / chosen_sum : my_prob;
}

template <int kPerLane>
__global__ void route_top_k_kernel(RouteParams p) {
  wait_for_predecessor();
  allow_successor();
  const int row = blockIdx.x * kRouteWarps + threadIdx.x / 32;
  if (row < p.n_rows) route_row<kPerLane>(p, row);
}

// The whole block groups the pairs (counts and cursor: n_experts ints of shared memory each).
__device__ void group_pairs(const GroupParams& p, int* counts, int* cursor) {
  for (int e = threadIdx.x; e < p.n_experts; e += blockDim.x) counts[e] = 0;
  __syncthreads();
  for (int pair = threadIdx.x; pair < p.n_pairs; pair += blockDim.x) {
    const int e = p.experts[pair];
    if (e >= p.first_expert && e < p.end_expert) atomicAdd(&counts[e], 1);
  }
  __syncthreads();
  // The first warp scans the counts: each lane takes a run of experts, the runs' pair and chosen
  // counts are scanned across the warp, then each lane writes its run's offsets and chosen experts.
  if (threadIdx.x < 32) {
    const int lane = threadIdx.x;
    const int run = (p.n_experts + 31) / 32;
    const int first = min(lane * run, p.n_experts), end = min(first + run, p.n_experts);
    int pairs = 0, chosen = 0;
    for (int e = first; e < end; ++e) {
      pairs += counts[e];
      chosen += counts[e] > 0 ? 1 : 0;
    }
    int pairs_before = pairs, chosen_before = chosen;  // inclusive scans, made exclusive below
#pragma unroll
    for (int offset = 1; offset < 32; offset <<= 1) {
      const int other_pairs = __shfl_up_sync(0xffffffffu, pairs_before, offset);
      const int other_chosen = __shfl_up_sync(0xffffffffu, chosen_before, offset);
      if (lane >= offset) {
        pairs_before += other_pairs;
        chosen_before += other_chosen;
      }
    }
    const int n_active = __shfl_sync(0xffffffffu, chosen_before, 31);
    if (lane == 31) p.offsets[p.n_experts] = pairs_before;
    pairs_before -= pairs;
    chosen_before -= chosen;
    for (int e = first; e < end; ++e) {
      p.offsets[e] = pairs_before;
      cursor[e] = pairs_before;
      pairs_before += counts[e];
      if (counts[e] > 0) p.active[chosen_before++] = e;
    }
    for (int i = n_active + lane; i < p.end_expert - p.first_expert; i += 32) p.active[i] = -1;
  }
  __syncthreads();
  for (int pair = threadIdx.x; pair < p.n_pairs; pair += blockDim.x) {
    const int e = p.experts[pair];
    if (e >= p.first_expert && e < p.end_expert) p.pairs[atomicAdd(&cursor[e], 1)] = pair;
  }
}

__global__ void __launch_bounds__(1024) group_by_expert_kernel(GroupParams p) {
  wait_for_predecessor();
  allow_successor();
  __shared__ int counts[kMaxExperts];
  __shared__ int cursor[kMaxExperts];
  group_pairs(p, counts, cursor);
}

// One block routes every row, a warp per row at a time, then groups the pairs it chose: what is
// written to global memory before __syncthreads is visible to the whole block after it.
template <int kPerLane>
__global__ void __launch_bounds__(kFusedRouteWarps * 32) route_and_group_kernel(RouteParams route, GroupParams group) {
  wait_for_predecessor();
  allow_successor();
  __shared__ int counts[kMaxExperts];
  __shared__ int cursor[kMaxExperts];
  for (int row = threadIdx.x / 32; row < route.n_rows; row += kFusedRouteWarps) route_row<kPerLane>(route, row);
  __syncthreads();
  group_pairs(group, counts, cursor);
}

// ---------------------------------------------------------------------------------------------
// launchers

namespace {

void check_route(const RouteParams& params) {
  if (params.n_experts < 1 || params.n_experts > kMaxExperts) throw_unsupported("routing over experts outside 1..1024", params.n_experts);
  if (params.top_k < 1 || params.top_k > kMaxTopK || params.top_k > params.n_experts)
    throw_unsupported("routing to top-k experts outside 1..min(16, experts)", params.top_k);
}

void check_group(const GroupParams& params) {
  if (params.n_experts < 1 || params.n_experts > kMaxExperts) throw_unsupported("grouping experts outside 1..1024", params.n_experts);
  if (params.first_expert < 0 || params.first_expert > params.end_expert || params.end_expert > params.n_experts)
    throw_unsupported("a rank's first expert outside 0..end..experts", params.first_expert);
  if (!params.offsets || !params.pairs || !params.active) throw_unsupported("grouping experts without its outputs", 0);
}

// Calls launch(std::integral_constant<int, N>) with N the experts a lane holds: the least power of
// two with 32 N >= n_experts, at most kMostPerLane (the launcher has checked the count).
template <int kMostPerLane, int kPerLane = 1, typename Launch>
void with_experts_per_lane(int n_experts, Launch&& launch) {
  if constexpr (kPerLane < kMostPerLane) {
    if (n_experts > 32 * kPerLane) return with_experts_per_lane<kMostPerLane, 2 * kPerLane>(n_experts, launch);
  }
  launch(std::integral_constant<int, kPerLane>{});
}

}  // namespace

void launch_route_top_k(const RouteParams& params, cudaStream_t stream) {
  check_route(params);
  if (params.n_rows == 0) return;
  const int blocks = (params.n_rows + kRouteWarps - 1) / kRouteWarps;
  with_experts_per_lane<kMaxExperts / 32>(params.n_experts, [&](auto per_lane) {
    launch_pdl(route_top_k_kernel<decltype(per_lane)::value>, blocks, kRouteWarps * 32, 0, stream, params);
  });
  CUDA_CHECK_LAUNCH();
}

void launch_group_by_expert(const GroupParams& params, cudaStream_t stream) {
  check_group(params);
  launch_pdl(group_by_expert_kernel, 1, 1024, 0, stream, params);
  CUDA_CHECK_LAUNCH();
}

void launch_route_and_group(const RouteParams& route, const GroupParams& group, cudaStream_t stream) {
  check_route(route);
  check_group(group);
  if (route.n_rows > kFusedRouteMaxRows || route.n_experts > kFusedRouteMaxExperts) {
    launch_route_top_k(route, stream);
    launch_group_by_expert(group, stream);
    return;
  }
  with_experts_per_lane<kFusedRouteMaxExperts / 32>(route.n_experts, [&](auto per_lane) {
    launch_pdl(route_and_group_kernel<decltype(per_lane)::value>, 1, kFusedRouteWarps * 32, 0, stream, route, group);
  });
  CUDA_CHECK_LAUNCH();
}

}  // namespace shardlm::cuda
