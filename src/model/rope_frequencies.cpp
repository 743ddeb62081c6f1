// Mirrors transformers' _compute_{default,linear_scaling,llama3,yarn}_parameters. Computed in f32
// where torch computes in f32, so positions × inv_freq round the way the reference does.
#include "model/rope_frequencies.h"

#include <algorithm>
#include <cmath>
#include <numbers>

namespace shardlm {
namespace {

std::vector<float> default_inv_freq(float base, int dim) {
  std::vector<float> inv_freq(size_t(dim / 2));
  for (int i = 0; i < dim / 2; ++i) {
    const float exponent = float(2 * i) / float(dim);
    inv_freq[size_t(i)] = 1.0f / std::pow(base, exponent);
  }
  return inv_freq;
}

void apply_llama3_scaling(const RopeScaling& scaling, std::vector<float>& inv_freq) {
  const float old_context = float(scaling.original_max_position_embeddings);
  const float low_freq_wavelen = old_context / scaling.low_freq_factor;
  const float high_freq_wavelen = old_context / scaling.high_freq_factor;
  for (float& freq : inv_freq) {
    const float wavelen = 2.0f * std::numbers::pi_v<float> / freq;
    if (wavelen > low_freq_wavelen) {
      freq = freq / scaling.factor;
    } else if (wavelen >= high_freq_wavelen) {
      const float smooth = (old_context / wavelen - scaling.low_freq_factor) /
                           (scaling.high_freq_factor - scaling.low_freq_factor);
      freq = (1.0f - smooth) * freq / scaling.factor + smooth * freq;
    }
  }
}

double yarn_mscale(double scale, double mscale) {
  return scale <= 1.0 ? 1.0 : 0.1 * mscale * std::log(scale) + 1.0;
}

RopeFrequencies yarn_frequencies(const ModelConfig& config, int dim) {
  const RopeScaling& scaling = config.rope_scaling;
  const double base = config.rope_theta;
  const double factor = scaling.factor;
  const int original_context = scaling.original_max_position_embeddings > 0
                                   ? scaling.original_max_position_embeddings
                                   : config.max_position_embeddings;
  RopeFrequencies result;
  if (scaling.attention_factor) {
    result.attention_scaling = *scaling.attention_factor;
  } else if (scaling.mscale && scaling.mscale_all_dim && *scaling.mscale != 0.0f && *scaling.mscale_all_dim != 0.0f) {
    result.attention_scaling = float(yarn_mscale(factor, *scaling.mscale) / yarn_mscale(factor, *scaling.mscale_all_dim));
  } else {
    result.attention_scaling = float(yarn_mscale(factor, 1.0));
  }
  auto correction_dim = [&](double rotations) {
    return (dim * std::log(original_context / (rotations * 2.0 * std::numbers::pi))) / (2.0 * std::log(base));
  };
  double low = correction_dim(scaling.beta_fast);
  double high = correction_dim(scaling.beta_slow);
  if (scaling.truncate) {
    low = std::floor(low);
    high = std::ceil(high);
  }
  low = std::max(low, 0.0);
  high = std::min(high, double(dim - 1));
  if (low == high) high += 0.001;  // as transformers does, to avoid a division by zero

  const std::vector<float> extrapolation = default_inv_freq(float(base), dim);
  result.inv_freq.resize(extrapolation.size());
  for (size_t i = 0; i < extrapolation.size(); ++i) {
    const float ramp = std::clamp(float((double(i) - low) / (high - low)), 0.0f, 1.0f);
    const float extrapolation_weight = 1.0f - ramp;
    const float interpolation = extrapolation[i] / float(factor);
    result.inv_freq[i] = interpolation * (1.0f - extrapolation_weight) + extrapolation[i] * extrapolation_weight;
  }
  return result;
}

}  // namespace

RopeFrequencies compute_rope_frequencies(const ModelConfig& config) {
  const int dim = config.head_dim;
  switch (config.rope_scaling.type) {
    case RopeType::DEFAULT:
      return {default_inv_freq(config.rope_theta, dim), 1.0f};
    case RopeType::LINEAR: {
      RopeFrequencies result{default_inv_freq(config.rope_theta, dim), 1.0f};
      for (float& freq : result.inv_freq) freq /= config.rope_scaling.factor;
      return result;
    }
    case RopeType::LLAMA3: {
      RopeFrequencies result{default_inv_freq(config.rope_theta, dim), 1.0f};
      apply_llama3_scaling(config.rope_scaling, result.inv_freq);
      return result;
    }
    case RopeType::YARN:
      return yarn_frequencies(config, dim);
  }
  return {};
}

}  // namespace shardlm
