// One block per (row, head): q heads first, then kv heads (which also copy their v head). The
// rotation pairs element i with i + head_dim/2, as transformers' rotate_half does.
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/kernels/common.cuh"
#include "backend/cuda/kernels/pdl.cuh"
#include "backend/cuda/kernels/qkv_rope.h"

namespace shardlm::cuda {

// ---------------------------------------------------------------------------------------------
// kernels

constexpr int kQkvRopeThreads = 64;

__global__ void qkv_rope_kernel(QkvRopeParams p) {
  wait_for_predecessor();
  allow_successor();
  const int row = blockIdx.x;
  const int head = blockIdx.y;
  const bool is_query = head < p.n_heads;
  const int kv_head = head - p.n_heads;
  const int q_dim = p.n_heads * p.head_dim, kv_dim = p.n_kv_heads * p.head_dim;
  const int half = p.head_dim / 2;
  const int64_t qkv_row = int64_t(row) * (q_dim + 2 * kv_dim);
  const int offset = is_query ? head * p.head_dim : q_dim + kv_head * p.head_dim;
  const __nv_bfloat16* norm = is_query ? p.q_norm : p.k_norm;

  auto load = [&](int i) {
    float value = __bfloat162float(p.qkv[qkv_row + offset + i]);
    if (p.bias) value += __bfloat162float(p.bias[offset + i]);
    return value;
  };

  float inverse_rms = 1.0f;
  if (norm) {
    float sum_squares = 0.0f;
    for (int i = threadIdx.x; i < p.head_dim; i += blockDim.x) {
      const float value = load(i);
      sum_squares += value * value;
    }
    inverse_rms = rsqrtf(block_sum(sum_squares) / float(p.head_dim) + p.eps);
  }

  const int position = p.positions[row];
  const int64_t cache_row = (int64_t(p.slots[row]) * p.capacity + position) * kv_dim;
  __nv_bfloat16* destination = is_query ? p.q_out + int64_t(row) * q_dim + head * p.head_dim
                                        : p.k_cache + cache_row + kv_head * p.head_dim;
  for (int i = threadIdx.x; i < half; i += blockDim.x) {
    float first = load(i), second = load(i + half);
    if (norm) {
      first = __bfloat162float(norm[i]) * (first * inverse_rms);
      second = __bfloat162float(norm[i + half]) * (second * inverse_rms);
    }
    // The angle is rounded to f32 before cos/sin, as torch computes position · inv_freq in f32.
    const float angle = float(position) * p.inv_freq[i];
    float sin_value, cos_value;
    sincosf(angle, &sin_value, &cos_value);
    cos_value *= p.attention_scaling;
    sin_value *= p.attention_scaling;
    destination[i] = __float2bfloat16(first * cos_value - second * sin_value);
    destination[i + half] = __float2bfloat16(second * cos_value + first * sin_value);
  }
  if (!is_query) {
    const int v_offset = q_dim + kv_dim + kv_head * p.head_dim;
    __nv_bfloat16* v_destination = p.v_cache + cache_row + kv_head * p.head_dim;
    for (int i = threadIdx.x; i < p.head_dim; i += blockDim.x) {
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
  const dim3 grid(params.n_rows, params.n_heads + params.n_kv_heads);
  launch_pdl(qkv_rope_kernel, grid, kQkvRopeThreads, 0, stream, params);
  CUDA_CHECK_LAUNCH();
}

}  // namespace shardlm::cuda
