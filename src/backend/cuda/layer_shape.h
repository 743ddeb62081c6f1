// The widths of one decoder layer as a model holds it: the config's, or a tensor-parallel rank's
// share of the heads, intermediate sizes and experts, which each layer's own plan entries decide.
#pragma once

#include <cstdint>
#include <span>

#include "io/model_config.h"
#include "model/llama_weights.h"

namespace shardlm::cuda {

// A mixture-of-experts layer's MLP as one rank holds it: the router scores n_experts, the rank
// holds experts [first_expert, first_expert + local_experts) (all of them but under expert
// parallelism), each expert_ff wide (its share under tensor parallelism); Qwen2-MoE's shared
// expert is shared_ff wide (0: none). All zero in a dense layer. on_host: the routed experts stay in
// cpu memory and the CPU runs the chosen ones (--cpu-moe); the router and shared expert do not.
struct ExpertShape {
  int n_experts = 0, top_k = 0, first_expert = 0, local_experts = 0;
  int64_t expert_ff = 0, shared_ff = 0;
  bool on_host = false;
};

struct LayerShape {
  int n_heads = 0, n_kv_heads = 0;
  int64_t ff_dim = 0;  // the dense MLP's (0 in a sparse layer)
  ExpertShape experts;
  bool sparse() const { return experts.n_experts > 0; }
};

// Layer il of the config, unsplit: dense, or sparse where config.is_sparse_layer(il).
LayerShape whole_layer_shape(const ModelConfig& config, int il);
LayerShape shape_of(const LlamaLayerWeights& layer);
// The widest of each width over the layers: what the buffers every layer shares are sized for.
// Experts kept in cpu memory count only for routing (experts.on_host: some layer keeps them so);
// expert_ff is that of the experts the GPU runs (0: none).
LayerShape widest_shape(std::span<const LayerShape> shapes);

// A layer's matrix dimensions, in elements.
struct Strides {
  int64_t dim, q_dim, kv_dim, qkv_dim, ff_dim, vocab;
};

Strides strides_of(const ModelConfig& config, const LayerShape& shape);

}  // namespace shardlm::cuda
