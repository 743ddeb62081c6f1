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

  // Four positions per pass, in both products: four independent reductions keep the FMA units
  // busy where one would wait on its own adds, and each output element is loaded and stored once
  // per four value rows instead of once per row.
  int64_t position = first;
  for (; position + 4 <= last + 1; position += 4) {
    const float* key0 = keys + position * kv_stride + kv_offset;
    const float *key1 = key0 + kv_stride, *key2 = key1 + kv_stride, *key3 = key2 + kv_stride;
    float dot0 = 0.0f, dot1 = 0.0f, dot2 = 0.0f, dot3 = 0.0f;
#pragma omp simd reduction(+ : dot0, dot1, dot2, dot3)
    for (int i = 0; i < head_dim; ++i) {
      dot0 += query[i] * key0[i];
      dot1 += query[i] * key1[i];
      dot2 += query[i] * key2[i];
      dot3 += query[i] * key3[i];
    }
    scores[position] = dot0 * shape.scale;
    scores[position + 1] = dot1 * shape.scale;
    scores[position + 2] = dot2 * shape.scale;
    scores[position + 3] = dot3 * shape.scale;
  }
  for (; position <= last; ++position) {
    const float* key = keys + position * kv_stride + kv_offset;
    float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
    for (int i = 0; i < head_dim; ++i) dot += query[i] * key[i];
    scores[position] = dot * shape.scale;
  }
  const float max_score = *std::max_element(scores + first, scores + last + 1);
  float sum = 0.0f;
  for (position = first; position <= last; ++position) {
    scores[position] = std::exp(scores[position] - max_score);
    sum += scores[position];
  }
  float* result = out + int64_t(head) * head_dim;
  std::fill(result, result + head_dim, 0.0f);
  const float inverse_sum = 1.0f / sum;
  for (position = first; position + 4 <= last + 1; position += 4) {
    const float* value0 = values + position * kv_stride + kv_offset;
    const float *value1 = value0 + kv_stride, *value2 = value1 + kv_stride, *value3 = value2 + kv_stride;
    const float weight0 = scores[position] * inverse_sum, weight1 = scores[position + 1] * inverse_sum;
    const float weight2 = scores[position + 2] * inverse_sum, weight3 = scores[position + 3] * inverse_sum;
#pragma omp simd
    for (int i = 0; i < head_dim; ++i)
      result[i] += weight0 * value0[i] + weight1 * value1[i] + weight2 * value2[i] + weight3 * value3[i];
  }
  for (; position <= last; ++position) {
    const float weight = scores[position] * inverse_sum;
    const float* value = values + position * kv_stride + kv_offset;
#pragma omp simd
    for (int i = 0; i < head_dim; ++i) result[i] += weight * value[i];
  }
}

}  // namespace shardlm::cpu
