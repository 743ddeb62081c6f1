// Attention for one (token, head): scores, softmax in f32, weighted sum of values. The caller
// parallelises over tokens × heads; the sequence is short enough on the CPU that materialising one
// row of scores per head is cheap.
#include "backend/cpu/attention.h"

#include <algorithm>
#include <cmath>

namespace shardlm::cpu {

void attend_one_head(const float* q, const float* keys, const float* values, int64_t first, int64_t last,
                     const AttentionShape& shape, int head, float* out, float* scores) {
  const int head_dim = shape.head_dim;
  const int group = shape.n_heads / shape.n_kv_heads;
  const int64_t kv_stride = int64_t(shape.n_kv_heads) * head_dim;
  const int64_t kv_offset = int64_t(head / group) * head_dim;
  const float* query = q + int64_t(head) * head_dim;

  float max_score = -INFINITY;
  for (int64_t position = first; position <= last; ++position) {
    const float* key = keys + position * kv_stride + kv_offset;
    // Without the simd reduction the compiler keeps IEEE order: one dependent add per element.
    float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
    for (int i = 0; i < head_dim; ++i) dot += query[i] * key[i];
    scores[position] = dot * shape.scale;
    max_score = std::max(max_score, scores[position]);
  }
  float sum = 0.0f;
  for (int64_t position = first; position <= last; ++position) {
    scores[position] = std::exp(scores[position] - max_score);
    sum += scores[position];
  }
  float* result = out + int64_t(head) * head_dim;
  std::fill(result, result + head_dim, 0.0f);
  const float inverse_sum = 1.0f / sum;
  for (int64_t position = first; position <= last; ++position) {
    const float weight = scores[position] * inverse_sum;
    const float* value = values + position * kv_stride + kv_offset;
    for (int i = 0; i < head_dim; ++i) result[i] += weight * value[i];
  }
}

}  // namespace shardlm::cpu
