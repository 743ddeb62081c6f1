// The widths of one decoder layer as a model holds it: the config's, or a tensor-parallel rank's
// share of the heads and intermediate size, which each layer's own plan entries decide.
#pragma once

#include <cstdint>
#include <span>

#include "io/model_config.h"
#include "model/llama_weights.h"

namespace shardlm::cuda {

struct LayerShape {
  int n_heads = 0, n_kv_heads = 0;
  int64_t ff_dim = 0;
};

LayerShape whole_layer_shape(const ModelConfig& config);
LayerShape shape_of(const LlamaLayerWeights& layer);
// The widest of each width over the layers: what the buffers every layer shares are sized for.
LayerShape widest_shape(std::span<const LayerShape> shapes);

// A layer's matrix dimensions, in elements.
struct Strides {
  int64_t dim, q_dim, kv_dim, qkv_dim, ff_dim, vocab;
};

Strides strides_of(const ModelConfig& config, const LayerShape& shape);

}  // namespace shardlm::cuda
