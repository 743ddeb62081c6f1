// Attention for one token and query heads of one KV head's group: scores, softmax in f32, weighted
// sum of values. The caller parallelises over tokens × groups (or parts of groups); the sequence is
// short enough on the CPU that materialising the heads' rows of scores is cheap.
#include "ops/cpu/attention.h"

#include <algorithm>
#include <cmath>

namespace shardlm::cpu {

void attend_heads(const float* q, const PagedRows& keys, const PagedRows& values, int64_t first, int64_t last,
                  const AttentionShape& shape, int head_begin, int head_end, float* out, float* scores) {
  const int head_dim = shape.head_dim;
  const int n_heads_here = head_end - head_begin;
  const int64_t kv_offset = int64_t(head_begin / heads_per_kv_head(shape)) * head_dim;
  const int64_t scores_stride = last + 1;
  const float* queries = q + int64_t(head_begin) * head_dim;
  float* results = out + int64_t(head_begin) * head_dim;

  // Key rows four at a time: each is read from memory once and stays in L1 for the group's heads,
  // and every head computes four independent dot products (a simd reduction each), so the FMA
  // units never wait on one dependent chain of adds.
  int64_t position = first;
  for (; position + 4 <= last + 1; position += 4) {
    const float* key0 = keys.row(position) + kv_offset;
    const float* key1 = keys.row(position + 1) + kv_offset;
    const float* key2 = keys.row(position + 2) + kv_offset;
    const float* key3 = keys.row(position + 3) + kv_offset;
    for (int head = 0; head < n_heads_here; ++head) {
      const float* query = queries + int64_t(head) * head_dim;
      float dot0 = 0.0f, dot1 = 0.0f, dot2 = 0.0f, dot3 = 0.0f;
#pragma omp simd reduction(+ : dot0, dot1, dot2, dot3)
      for (int i = 0; i < head_dim; ++i) {
        dot0 += query[i] * key0[i];
        dot1 += query[i] * key1[i];
        dot2 += query[i] * key2[i];
        dot3 += query[i] * key3[i];
      }
      float* head_scores = scores + head * scores_stride + position;
      head_scores[0] = dot0 * shape.scale;
      head_scores[1] = dot1 * shape.scale;
      head_scores[2] = dot2 * shape.scale;
      head_scores[3] = dot3 * shape.scale;
    }
  }
  for (; position <= last; ++position) {
    const float* key = keys.row(position) + kv_offset;
    for (int head = 0; head < n_heads_here; ++head) {
      const float* query = queries + int64_t(head) * head_dim;
      float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
      for (int i = 0; i < head_dim; ++i) dot += query[i] * key[i];
      scores[head * scores_stride + position] = dot * shape.scale;
    }
  }
  for (int head = 0; head < n_heads_here; ++head) {
    float* head_scores = scores + head * scores_stride;
    const float max_score = *std::max_element(head_scores + first, head_scores + last + 1);
    float sum = 0.0f;
    for (int64_t position = first; position <= last; ++position) {
      head_scores[position] = std::exp(head_scores[position] - max_score);
      sum += head_scores[position];
    }
    const float inverse_sum = 1.0f / sum;
    for (int64_t position = first; position <= last; ++position) head_scores[position] *= inverse_sum;
  }

  // Value rows four at a time: each output element is loaded and stored once per four rows.
  std::fill(results, results + int64_t(n_heads_here) * head_dim, 0.0f);
  for (position = first; position + 4 <= last + 1; position += 4) {
    const float* value0 = values.row(position) + kv_offset;
    const float* value1 = values.row(position + 1) + kv_offset;
    const float* value2 = values.row(position + 2) + kv_offset;
    const float* value3 = values.row(position + 3) + kv_offset;
    for (int head = 0; head < n_heads_here; ++head) {
      const float* weights = scores + head * scores_stride + position;
      float* result = results + int64_t(head) * head_dim;
#pragma omp simd
      for (int i = 0; i < head_dim; ++i)
        result[i] += weights[0] * value0[i] + weights[1] * value1[i] + weights[2] * value2[i] + weights[3] * value3[i];
    }
  }
  for (; position <= last; ++position) {
    const float* value = values.row(position) + kv_offset;
    for (int head = 0; head < n_heads_here; ++head) {
      const float weight = scores[head * scores_stride + position];
      float* result = results + int64_t(head) * head_dim;
#pragma omp simd
      for (int i = 0; i < head_dim; ++i) result[i] += weight * value[i];
    }
  }
}

}  // namespace shardlm::cpu
