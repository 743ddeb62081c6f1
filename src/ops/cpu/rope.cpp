// RoPE rotation. The angle is formed in f32 (position · inv_freq) as torch does, so long positions
// round the same way; cos/sin of that angle are then exact to f32.
#include "ops/cpu/rope.h"

#include <cmath>
#include <vector>

namespace shardlm::cpu {

void apply_rope(float* x, int n_heads, int head_dim, int64_t position, std::span<const float> inv_freq,
                float attention_scaling) {
  const int half = head_dim / 2;
  float cos_values[512];
  float sin_values[512];
  std::vector<float> large_cos, large_sin;
  float* cos_table = cos_values;
  float* sin_table = sin_values;
  if (half > 512) {
    large_cos.resize(size_t(half));
    large_sin.resize(size_t(half));
    cos_table = large_cos.data();
    sin_table = large_sin.data();
  }
  for (int i = 0; i < half; ++i) {
    const float angle = float(position) * inv_freq[size_t(i)];
    cos_table[i] = float(std::cos(double(angle))) * attention_scaling;
    sin_table[i] = float(std::sin(double(angle))) * attention_scaling;
  }
  for (int head = 0; head < n_heads; ++head) {
    float* v = x + int64_t(head) * head_dim;
    for (int i = 0; i < half; ++i) {
      const float first = v[i];
      const float second = v[i + half];
      v[i] = first * cos_table[i] - second * sin_table[i];
      v[i + half] = second * cos_table[i] + first * sin_table[i];
    }
  }
}

}  // namespace shardlm::cpu
