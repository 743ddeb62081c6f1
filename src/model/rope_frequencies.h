// Rotary position embedding frequencies for every rope type HF supports in our architectures
// (default, linear, llama3, yarn), computed as transformers' modeling_rope_utils does.
#pragma once

#include <vector>

#include "io/model_config.h"

namespace shardlm {

struct RopeFrequencies {
  std::vector<float> inv_freq;    // (head_dim / 2)
  float attention_scaling = 1.0f;  // multiplies cos and sin (YaRN's mscale)
};

RopeFrequencies compute_rope_frequencies(const ModelConfig& config);

}  // namespace shardlm
