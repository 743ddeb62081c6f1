// One warp per (row, head), eight heads per block: q heads first, then kv heads (which also copy
// their v head). Lane l holds the rotary pairs (i, i + head_dim/2) for i = l, l + 32, ..., as
// transformers' rotate_half pairs them, so the q/k norm is a warp reduction. (A block of 64
// threads per head took 27 us for a 512-row Llama-3-8B prefill on an H200: the blocks were too
// small to keep the memory system busy.)
#include "core/cuda/cuda_check.h"
#include "ops/cuda/common.cuh"
#include "ops/cuda/pdl.cuh"
#include "ops/cuda/qkv_rope.h"
#include "ops/cuda/rotary.cuh"

namespace shardlm::cuda {

// ---------------------------------------------------------------------------------------------
// kernels

constexpr int kHeadsPerBlock = 8;
constexpr int kMaxPairsPerLane = 4;  // head_dim up to 256

__global__ void __launch_bounds__(32 * kHeadsPerBlock) qkv_rope_kernel(QkvRopeParams p) {
  const int row = blockIdx.x;
  const int head = blockIdx.y * kHeadsPerBlock + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  const bool is_query = head < p.n_heads;
  const int kv_head = head - p.n_heads;
  const int q_dim = p.n_heads * p.head_dim, kv_dim = p.n_kv_heads * p.head_dim;
  // The row's position and cache row come from the step's inputs and block tables, copied before
  // the step's first kernel: looked up before waiting for the previous kernel, whose tail then
  // hides the lookup.
  const int position = p.positions[row];
  const int64_t cache_row = is_query ? 0 : p.kv.row(p.slots[row], position) * kv_dim;
  wait_for_predecessor();
  allow_successor();
  if (head >= p.n_heads + p.n_kv_heads) return;
  const int half = p.head_dim / 2;
  const int64_t qkv_row = int64_t(row) * (q_dim + 2 * kv_dim);
  const int offset = is_query ? head * p.head_dim : q_dim + kv_head * p.head_dim;
  const __nv_bfloat16* norm = is_query ? p.q_norm : p.k_norm;

  auto load = [&](int i) {
    float value = __bfloat162float(p.qkv[qkv_row + offset + i]);
    if (p.bias) value += __bfloat162float(p.bias[offset + i]);
    return value;
  };
  float first[kMaxPairsPerLane], second[kMaxPairsPerLane], sum_squares = 0.0f;
#pragma unroll
  for (int j = 0; j < kMaxPairsPerLane; ++j) {
    const int i = lane + 32 * j;
    if (i >= half) break;
    first[j] = load(i);
    second[j] = load(i + half);
    sum_squares += first[j] * first[j] + second[j] * second[j];
  }
  const float inverse_rms = norm ? rsqrtf(warp_sum(sum_squares) / float(p.head_dim) + p.eps) : 1.0f;

  __nv_bfloat16* destination = is_query ? p.q_out + int64_t(row) * q_dim + head * p.head_dim
                                        : p.k_cache + cache_row + kv_head * p.head_dim;
#pragma unroll
  for (int j = 0; j < kMaxPairsPerLane; ++j) {
    const int i = lane + 32 * j;
    if (i >= half) break;
    float a = first[j], b = second[j];
    if (norm) {
      a = __bfloat162float(norm[i]) * (a * inverse_rms);
      b = __bfloat162float(norm[i + half]) * (b * inverse_rms);
    }
    const RotatedPair rotated = rotate_pair(a, b, position, p.inv_freq[i], p.attention_scaling);
    destination[i] = __float2bfloat16(rotated.first);
    destination[i + half] = __float2bfloat16(rotated.second);
  }
  if (!is_query) {
    const int v_offset = q_dim + kv_dim + kv_head * p.head_dim;
    __nv_bfloat16* v_destination = p.v_cache + cache_row + kv_head * p.head_dim;
    for (int i = lane; i < p.head_dim; i += 32) {
      float value = __bfloat162float(p.qkv[qkv_row + v_offset + i]);
      if (p.bias) value += __bfloat162float(p.bias[v_offset + i]);
      v_destination[i] = __float2bfloat16(value);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// launchers

void launch_qkv_rope(const QkvRopeParams& params, cudaStream_t stream) {
  if (params.n_rows == 0) return;
  if (params.head_dim > 64 * kMaxPairsPerLane || params.head_dim % 2 != 0)
    throw_unsupported("RoPE head_dim (odd, or above 256)", params.head_dim);
  const int heads = params.n_heads + params.n_kv_heads;
  const dim3 grid(params.n_rows, (heads + kHeadsPerBlock - 1) / kHeadsPerBlock);
  launch_pdl(qkv_rope_kernel, grid, 32 * kHeadsPerBlock, 0, stream, params);
  CUDA_CHECK_LAUNCH();
}

}  // namespace shardlm::cuda
