#include "backend/cuda/layer_shape.h"

#include <algorithm>

namespace shardlm::cuda {

LayerShape whole_layer_shape(const ModelConfig& config, int il) {
  LayerShape shape{config.num_attention_heads, config.num_key_value_heads, config.intermediate_size, {}};
  if (!config.is_sparse_layer(il)) return shape;
  const MoeConfig& moe = config.moe;
  shape.ff_dim = 0;
  shape.experts = {moe.num_experts, moe.num_experts_per_tok, 0, moe.num_experts, moe.expert_intermediate_size,
                   moe.shared_expert_intermediate_size};
  return shape;
}

LayerShape shape_of(const LlamaLayerWeights& layer) {
  LayerShape shape{layer.n_heads, layer.n_kv_heads, layer.ff_dim(), {}};
  if (!layer.moe) return shape;
  const SparseMoeWeights& moe = *layer.moe;
  ExpertShape& experts = shape.experts;
  experts.n_experts = moe.num_experts();
  experts.top_k = moe.top_k;
  // Expert parallelism leaves one run of whole experts on each rank.
  const auto first = std::find_if(moe.experts.begin(), moe.experts.end(), [](const ExpertWeights& e) { return e.present(); });
  experts.first_expert = int(first - moe.experts.begin());
  experts.local_experts = int(std::count_if(moe.experts.begin(), moe.experts.end(), [](const ExpertWeights& e) { return e.present(); }));
  experts.expert_ff = first == moe.experts.end() ? 0 : first->ff_dim();
  experts.shared_ff = moe.shared_expert ? moe.shared_expert->ff_dim() : 0;
  return shape;
}

LayerShape widest_shape(std::span<const LayerShape> shapes) {
  LayerShape widest;
  for (const LayerShape& shape : shapes) {
    widest.n_heads = std::max(widest.n_heads, shape.n_heads);
    widest.n_kv_heads = std::max(widest.n_kv_heads, shape.n_kv_heads);
    widest.ff_dim = std::max(widest.ff_dim, shape.ff_dim);
    ExpertShape& experts = widest.experts;
    experts.n_experts = std::max(experts.n_experts, shape.experts.n_experts);
    experts.top_k = std::max(experts.top_k, shape.experts.top_k);
    if (!shape.experts.on_host) experts.expert_ff = std::max(experts.expert_ff, shape.experts.expert_ff);
    experts.shared_ff = std::max(experts.shared_ff, shape.experts.shared_ff);
    experts.on_host = experts.on_host || shape.experts.on_host;
  }
  return widest;
}

Strides strides_of(const ModelConfig& config, const LayerShape& shape) {
  const int64_t q_dim = int64_t(shape.n_heads) * config.head_dim;
  const int64_t kv_dim = int64_t(shape.n_kv_heads) * config.head_dim;
  return {config.hidden_size, q_dim, kv_dim, q_dim + 2 * kv_dim, shape.ff_dim, config.vocab_size};
}

}  // namespace shardlm::cuda
