#include "backend/cuda/layer_shape.h"

#include <algorithm>

namespace shardlm::cuda {

LayerShape whole_layer_shape(const ModelConfig& config) {
  return {config.num_attention_heads, config.num_key_value_heads, config.intermediate_size};
}

LayerShape shape_of(const LlamaLayerWeights& layer) { return {layer.n_heads, layer.n_kv_heads, layer.ff_dim()}; }

LayerShape widest_shape(std::span<const LayerShape> shapes) {
  LayerShape widest;
  for (const LayerShape& shape : shapes) {
    widest.n_heads = std::max(widest.n_heads, shape.n_heads);
    widest.n_kv_heads = std::max(widest.n_kv_heads, shape.n_kv_heads);
    widest.ff_dim = std::max(widest.ff_dim, shape.ff_dim);
  }
  return widest;
}

Strides strides_of(const ModelConfig& config, const LayerShape& shape) {
  const int64_t q_dim = int64_t(shape.n_heads) * config.head_dim;
  const int64_t kv_dim = int64_t(shape.n_kv_heads) * config.head_dim;
  return {config.hidden_size, q_dim, kv_dim, q_dim + 2 * kv_dim, shape.ff_dim, config.vocab_size};
}

}  // namespace shardlm::cuda
