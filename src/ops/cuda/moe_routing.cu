// One warp routes one row: the row's logits go to shared memory, the softmax's max and sum are warp
// reductions, and each of the top_k picks is a warp argmax that then removes its winner. Grouping
// runs in one block: a histogram of the experts, its prefix sum (a warp scan) with the list of chosen
// experts, and a scatter of the pair ids. For a decode step's few rows one block does both.
#include "core/cuda/cuda_check.h"
#include "ops/cuda/common.cuh"
#include "ops/cuda/moe_routing.h"
#include "ops/cuda/pdl.cuh"

namespace shardlm::cuda {

// ---------------------------------------------------------------------------------------------
// kernels

constexpr int kRouteWarps = 4;
constexpr int kFusedRouteWarps = 32;

// One warp routes `row`, with prob (n_experts floats of shared memory) to itself.
__device__ void route_row(const RouteParams& p, int row, float* prob) {
  const int lane = threadIdx.x % 32;
  const float* logits = p.logits + int64_t(row) * p.n_experts;
  float largest = -INFINITY;
  for (int e = lane; e < p.n_experts; e += 32) largest = fmaxf(largest, logits[e]);
  largest = warp_max(largest);
  // As the CPU ranks them: exp then divided by the sum. A NaN logit (a broken model) ranks as 0, so
  // every pick is a real expert; its NaN still reaches the output, where sampling reports it.
  float total = 0.0f;
  for (int e = lane; e < p.n_experts; e += 32) {
    const float value = expf(logits[e] - largest);
    prob[e] = isnan(value) ? 0.0f : value;
    total += value;
  }
  total = warp_sum(total);
  for (int e = lane; e < p.n_experts; e += 32) {
    const float share = prob[e] / total;
    prob[e] = isnan(share) ? 0.0f : share;
  }
  __syncwarp();
  float chosen_sum = 0.0f;
  float chosen[kMaxTopK];
  int chosen_id[kMaxTopK];
  for (int k = 0; k < p.top_k; ++k) {
    float best = -1.0f;
    int best_id = INT32_MAX;
    for (int e = lane; e < p.n_experts; e += 32) {
      if (prob[e] > best || (prob[e] == best && e < best_id)) {
        best = prob[e];
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
    if (best_id >= p.n_experts) best_id = 0;  // unreachable while k <= n_experts; never index past prob
    chosen[k] = best;
    chosen_id[k] = best_id;
    chosen_sum += chosen[k];
    __syncwarp();
    if (lane == 0) prob[best_id] = -2.0f;  // taken: below every lane's starting best
    __syncwarp();
  }
  if (lane != 0) return;
  for (int k = 0; k < p.top_k; ++k) {
    p.experts[int64_t(row) * p.top_k + k] = chosen_id[k];
    p.weights[int64_t(row) * p.top_k + k] = p.normalize ? chosen[k] / chosen_sum : chosen[k];
  }
}

__global__ void route_top_k_kernel(RouteParams p) {
  wait_for_predecessor();
  allow_successor();
  extern __shared__ float probabilities[];  // (kRouteWarps, n_experts)
  const int warp = threadIdx.x / 32;
  const int row = blockIdx.x * kRouteWarps + warp;
  if (row < p.n_rows) route_row(p, row, probabilities + warp * p.n_experts);
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
__global__ void __launch_bounds__(kFusedRouteWarps * 32) route_and_group_kernel(RouteParams route, GroupParams group) {
  wait_for_predecessor();
  allow_successor();
  extern __shared__ float probabilities[];  // (kFusedRouteWarps, n_experts)
  __shared__ int counts[kMaxExperts];
  __shared__ int cursor[kMaxExperts];
  const int warp = threadIdx.x / 32;
  for (int row = warp; row < route.n_rows; row += kFusedRouteWarps)
    route_row(route, row, probabilities + warp * route.n_experts);
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

}  // namespace

void launch_route_top_k(const RouteParams& params, cudaStream_t stream) {
  check_route(params);
  if (params.n_rows == 0) return;
  const int blocks = (params.n_rows + kRouteWarps - 1) / kRouteWarps;
  const size_t shared = size_t(kRouteWarps) * size_t(params.n_experts) * sizeof(float);
  launch_pdl(route_top_k_kernel, blocks, kRouteWarps * 32, shared, stream, params);
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
  const size_t shared = size_t(kFusedRouteWarps) * size_t(route.n_experts) * sizeof(float);
  launch_pdl(route_and_group_kernel, 1, kFusedRouteWarps * 32, shared, stream, route, group);
  CUDA_CHECK_LAUNCH();
}

}  // namespace shardlm::cuda
