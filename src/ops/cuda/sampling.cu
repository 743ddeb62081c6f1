// One block per row. top-k, top-p and min-p are thresholds on the logit, found by bisection over block-wide
// counts and sums (no sort of the vocabulary); tokens at or above the threshold then compete by
// Gumbel-max, which samples exactly from their renormalised softmax. Ties at a threshold keep
// every tied token, as a sort-based top-k would keep an arbitrary subset of them. Every pass reads
// the row with 16-byte loads, several in flight per thread: one block reads a whole vocabulary, so
// its passes are bound by load latency (greedy took 51 us per token on an H100 with scalar loads).
// A thread that saw a NaN or infinite logit in its first pass enters the final argmax as
// (+Inf, kNonFiniteLogitsToken), which beats every real candidate (-1 wins the tie with a real +Inf),
// so the row's answer becomes the sentinel without another block-wide reduction.
#include <cfloat>
#include <cmath>

#include "core/cuda/cuda_check.h"
#include "ops/cuda/common.cuh"
#include "ops/cuda/pdl.cuh"
#include "ops/cuda/sampling.h"

namespace shardlm::cuda {

// ---------------------------------------------------------------------------------------------
// kernels

constexpr int kSamplingThreads = 1024;
constexpr int kBisectionSteps = 32;
constexpr int kLoadsInFlight = 4;

// Calls visit(index, logit) for every logit of the row, each once, spread over the block's threads.
template <typename Visit>
__device__ __forceinline__ void for_each_logit(const float* row, int vocab, Visit visit) {
  // Rows start 16-byte aligned only when the vocabulary is a multiple of 4: up to 3 lead floats.
  const int lead = min(vocab, int((16 - reinterpret_cast<uintptr_t>(row) % 16) % 16 / sizeof(float)));
  if (int(threadIdx.x) < lead) visit(int(threadIdx.x), row[threadIdx.x]);
  const float4* body = reinterpret_cast<const float4*>(row + lead);
  const int n_vectors = (vocab - lead) / 4;
  const int stride = int(blockDim.x);
  int v = int(threadIdx.x);
  for (; v + (kLoadsInFlight - 1) * stride < n_vectors; v += kLoadsInFlight * stride) {
    float4 values[kLoadsInFlight];
#pragma unroll
    for (int j = 0; j < kLoadsInFlight; ++j) values[j] = body[v + j * stride];
#pragma unroll
    for (int j = 0; j < kLoadsInFlight; ++j) {
      const int index = lead + 4 * (v + j * stride);
      visit(index, values[j].x);
      visit(index + 1, values[j].y);
      visit(index + 2, values[j].z);
      visit(index + 3, values[j].w);
    }
  }
  for (; v < n_vectors; v += stride) {
    const float4 values = body[v];
    const int index = lead + 4 * v;
    visit(index, values.x);
    visit(index + 1, values.y);
    visit(index + 2, values.z);
    visit(index + 3, values.w);
  }
  for (int i = lead + 4 * n_vectors + int(threadIdx.x); i < vocab; i += stride) visit(i, row[i]);
}

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

// Keeps the better of (best, best_index) and the candidate: the larger value, and on ties the smaller
// index (torch.argmax's rule).
__device__ __forceinline__ void keep_better(float& best, int& best_index, float value, int index) {
  if (value > best || (value == best && index < best_index)) {
    best = value;
    best_index = index;
  }
}

// The best over the warp; every lane gets the winner.
__device__ void warp_argmax(float& value, int& index) {
  for (int offset = 16; offset > 0; offset >>= 1)
    keep_better(value, index, __shfl_xor_sync(0xffffffffu, value, offset), __shfl_xor_sync(0xffffffffu, index, offset));
}

// Makes this thread's candidate the row's answer: kNonFiniteLogitsToken, ahead of every index.
__device__ __forceinline__ void flag_non_finite(float& best, int& best_index) {
  best = INFINITY;
  best_index = kNonFiniteLogitsToken;
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
  float* logits = p.logits + int64_t(blockIdx.x) * p.vocab;
  const RowSampling settings = p.settings[blockIdx.x];
  if (settings.n_penalised > 0) {
    // Each token once, so no two threads write the same logit; the barrier makes the changes
    // visible to the whole block's passes below.
    for (int i = int(threadIdx.x); i < settings.n_penalised; i += int(blockDim.x)) {
      const PenalisedToken token = settings.penalised[i];
      const float raw = logits[token.token];
      settings.raw_logits[i] = raw;
      logits[token.token] = penalised_logit(raw, token, settings.scales);
    }
    __syncthreads();
  }
  bool saw_non_finite = false;
  if (settings.temperature == 0.0f) {
    float best = -INFINITY;
    int best_index = INT_MAX;
    for_each_logit(logits, p.vocab, [&](int i, float logit) {
      saw_non_finite |= !isfinite(logit);
      keep_better(best, best_index, logit, i);
    });
    if (saw_non_finite) flag_non_finite(best, best_index);
    const int token = block_argmax(best, best_index);
    if (threadIdx.x == 0) p.tokens[blockIdx.x] = token;
    return;
  }

  float local_max = -FLT_MAX, local_min = FLT_MAX;
  for_each_logit(logits, p.vocab, [&](int, float logit) {
    saw_non_finite |= !isfinite(logit);
    local_max = fmaxf(local_max, logit);
    local_min = fminf(local_min, logit);
  });
  const float max_logit = block_max(local_max);
  const float min_logit = -block_max(-local_min);
  const float inverse_temperature = 1.0f / settings.temperature;

  // top-k: the largest threshold that still keeps at least k tokens.
  float threshold = min_logit;
  if (settings.top_k > 0 && settings.top_k < p.vocab) {
    float low = min_logit, high = max_logit;
    for (int step = 0; step < kBisectionSteps; ++step) {
      const float middle = 0.5f * (low + high);
      float count = 0.0f;
      for_each_logit(logits, p.vocab, [&](int, float logit) { count += logit >= middle ? 1.0f : 0.0f; });
      if (block_sum(count) >= float(settings.top_k)) low = middle;
      else high = middle;
    }
    threshold = low;
  }
  // top-p over what top-k kept: the largest threshold whose kept mass is still >= top_p.
  if (settings.top_p < 1.0f) {
    auto kept_mass = [&](float cut) {
      float mass = 0.0f;
      for_each_logit(logits, p.vocab, [&](int, float logit) {
        if (logit >= cut) mass += __expf((logit - max_logit) * inverse_temperature);
      });
      return block_sum(mass);
    };
    const float target = settings.top_p * kept_mass(threshold);
    float low = threshold, high = max_logit;
    for (int step = 0; step < kBisectionSteps; ++step) {
      const float middle = 0.5f * (low + high);
      if (kept_mass(middle) >= target) low = middle;
      else high = middle;
    }
    threshold = low;
  }
  // min-p: a token's probability at least min_p times the likeliest's, which in logits is a
  // threshold of its own: logit >= max + T·ln(min_p). The accurate logf, and the cut never above
  // the largest logit: a min_p just below 1 must still keep the likeliest token.
  if (settings.min_p > 0.0f)
    threshold = fmaxf(threshold, fminf(max_logit, max_logit + settings.temperature * logf(settings.min_p)));

  const uint64_t stream = uint64_t(p.stream_offsets[blockIdx.x]);
  float best = -INFINITY;
  int best_index = INT_MAX;
  for_each_logit(logits, p.vocab, [&](int i, float logit) {
    if (logit < threshold) return;
    const float gumbel = -__logf(-__logf(uniform_open(settings.seed, stream, uint64_t(i))));
    keep_better(best, best_index, logit * inverse_temperature + gumbel, i);
  });
  // The thresholds above are meaningless for such a row, but every pass still ends: it only costs
  // time on the way to the error.
  if (saw_non_finite) flag_non_finite(best, best_index);
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
