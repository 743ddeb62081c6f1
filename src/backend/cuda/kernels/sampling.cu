// One block per row. top-k and top-p are thresholds on the logit, found by bisection over block-wide
// counts and sums (no sort of the vocabulary); tokens at or above the threshold then compete by
// Gumbel-max, which samples exactly from their renormalised softmax. Ties at a threshold keep
// every tied token, as a sort-based top-k would keep an arbitrary subset of them.
#include <cfloat>
#include <cmath>

#include "backend/cuda/cuda_check.h"
#include "backend/cuda/kernels/common.cuh"
#include "backend/cuda/kernels/pdl.cuh"
#include "backend/cuda/kernels/sampling.h"

namespace shardlm::cuda {

// ---------------------------------------------------------------------------------------------
// kernels

constexpr int kSamplingThreads = 1024;
constexpr int kBisectionSteps = 32;

__device__ float block_max(float value) {
  __shared__ float partial[32];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  value = warp_max(value);
  __syncthreads();
  if (lane == 0) partial[warp] = value;
  __syncthreads();
  value = lane < int(blockDim.x / 32) ? partial[lane] : -FLT_MAX;
  return warp_max(value);
}

// Largest value with the smallest index wins (torch.argmax's tie rule); every lane gets the winner.
__device__ void warp_argmax(float& value, int& index) {
  for (int offset = 16; offset > 0; offset >>= 1) {
    const float other_value = __shfl_xor_sync(0xffffffffu, value, offset);
    const int other_index = __shfl_xor_sync(0xffffffffu, index, offset);
    if (other_value > value || (other_value == value && other_index < index)) {
      value = other_value;
      index = other_index;
    }
  }
}

// The same over the whole block; every thread gets the index.
__device__ int block_argmax(float value, int index) {
  __shared__ float best_values[32];
  __shared__ int best_indices[32];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  warp_argmax(value, index);
  __syncthreads();
  if (lane == 0) {
    best_values[warp] = value;
    best_indices[warp] = index;
  }
  __syncthreads();
  value = lane < int(blockDim.x / 32) ? best_values[lane] : -INFINITY;
  index = lane < int(blockDim.x / 32) ? best_indices[lane] : INT_MAX;
  warp_argmax(value, index);
  return index;
}

// Uniform in (0, 1) from (seed, stream, counter): splitmix64 finaliser over the mixed key.
__device__ float uniform_open(uint64_t seed, uint64_t stream, uint64_t counter) {
  uint64_t z = seed ^ (stream * 0x9e3779b97f4a7c15ull) ^ (counter * 0xbf58476d1ce4e5b9ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  z ^= z >> 31;
  return (float(z >> 40) + 0.5f) / 16777216.0f;
}

__global__ void sampling_kernel(SamplingKernelParams p) {
  wait_for_predecessor();
  allow_successor();
  const float* logits = p.logits + int64_t(blockIdx.x) * p.vocab;
  if (p.temperature == 0.0f) {
    float best = -INFINITY;
    int best_index = INT_MAX;
    for (int i = threadIdx.x; i < p.vocab; i += blockDim.x)
      if (logits[i] > best) {
        best = logits[i];
        best_index = i;
      }
    const int token = block_argmax(best, best_index);
    if (threadIdx.x == 0) p.tokens[blockIdx.x] = token;
    return;
  }

  float local_max = -FLT_MAX, local_min = FLT_MAX;
  for (int i = threadIdx.x; i < p.vocab; i += blockDim.x) {
    local_max = fmaxf(local_max, logits[i]);
    local_min = fminf(local_min, logits[i]);
  }
  const float max_logit = block_max(local_max);
  const float min_logit = -block_max(-local_min);
  const float inverse_temperature = 1.0f / p.temperature;

  // top-k: the largest threshold that still keeps at least k tokens.
  float threshold = min_logit;
  if (p.top_k > 0 && p.top_k < p.vocab) {
    float low = min_logit, high = max_logit;
    for (int step = 0; step < kBisectionSteps; ++step) {
      const float middle = 0.5f * (low + high);
      float count = 0.0f;
      for (int i = threadIdx.x; i < p.vocab; i += blockDim.x) count += logits[i] >= middle ? 1.0f : 0.0f;
      if (block_sum(count) >= float(p.top_k)) low = middle;
      else high = middle;
    }
    threshold = low;
  }
  // top-p over what top-k kept: the largest threshold whose kept mass is still >= top_p.
  if (p.top_p < 1.0f) {
    auto kept_mass = [&](float cut) {
      float mass = 0.0f;
      for (int i = threadIdx.x; i < p.vocab; i += blockDim.x)
        if (logits[i] >= cut) mass += __expf((logits[i] - max_logit) * inverse_temperature);
      return block_sum(mass);
    };
    const float target = p.top_p * kept_mass(threshold);
    float low = threshold, high = max_logit;
    for (int step = 0; step < kBisectionSteps; ++step) {
      const float middle = 0.5f * (low + high);
      if (kept_mass(middle) >= target) low = middle;
      else high = middle;
    }
    threshold = low;
  }

  const uint64_t stream = uint64_t(p.stream_offsets[blockIdx.x]);
  float best = -INFINITY;
  int best_index = INT_MAX;
  for (int i = threadIdx.x; i < p.vocab; i += blockDim.x) {
    if (logits[i] < threshold) continue;
    const float gumbel = -__logf(-__logf(uniform_open(p.seed, stream, uint64_t(i))));
    const float score = logits[i] * inverse_temperature + gumbel;
    if (score > best) {
      best = score;
      best_index = i;
    }
  }
  const int token = block_argmax(best, best_index);
  if (threadIdx.x == 0) p.tokens[blockIdx.x] = token;
}

// ---------------------------------------------------------------------------------------------
// launchers

void launch_sampling(const SamplingKernelParams& params, cudaStream_t stream) {
  if (params.n_rows == 0) return;
  launch_pdl(sampling_kernel, params.n_rows, kSamplingThreads, 0, stream, params);
  CUDA_CHECK_LAUNCH();
}

}  // namespace shardlm::cuda
