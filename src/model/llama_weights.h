// The weights of a Llama-family decoder (Llama, Mistral, Qwen2, Qwen3, and the mixture-of-experts
// Mixtral, Qwen2-MoE and Qwen3-MoE), as views into the mapped checkpoint. Shapes use HF's
// [out_features, in_features] orientation; dim = hidden_size, q_dim = n_heads * head_dim,
// kv_dim = n_kv_heads * head_dim, ff_dim = intermediate_size, each the rank's own under tensor
// parallelism (a layer's own: every layer follows its own plan entries).
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "core/weight_view.h"
#include "io/model_config.h"
#include "io/safetensors.h"
#include "model/linear.h"
#include "model/moe_weights.h"
#include "model/tensor_parallel_rank.h"
#include "plan/tp_plan_strategy.h"

namespace shardlm {

struct Embedding {
  WeightView table;          // (vocab, dim), or this rank's vocabulary rows
  int64_t vocab_begin = 0;   // token id of table's first row
  TpCollective collective = TpCollective::NONE;  // ALL_REDUCE: vocabulary-parallel (other rows are zero here)
};

struct LlamaLayerWeights {
  int n_heads = 0, n_kv_heads = 0;  // this rank's query and KV heads in this layer
  WeightView attn_norm;  // (dim)                   input_layernorm
  Linear q_proj;         // (q_dim, dim)   bias (q_dim): Qwen2, or Llama with attention_bias
  Linear k_proj;         // (kv_dim, dim)  bias (kv_dim) likewise
  Linear v_proj;         // (kv_dim, dim)  bias (kv_dim) likewise
  WeightView q_norm;     // (head_dim) Qwen3 only
  WeightView k_norm;     // (head_dim) Qwen3 only
  Linear o_proj;         // (dim, q_dim)   bias (dim): Llama with attention_bias only
  WeightView mlp_norm;   // (dim)                   post_attention_layernorm
  Linear gate_proj;      // (ff_dim, dim)  bias (ff_dim) with mlp_bias only; absent in a sparse layer
  Linear up_proj;        // (ff_dim, dim)  bias (ff_dim) likewise
  Linear down_proj;      // (dim, ff_dim)  bias (dim) likewise
  std::optional<SparseMoeWeights> moe;  // a mixture-of-experts layer's MLP (config.is_sparse_layer)

  int64_t q_dim() const { return q_proj.out_features(); }
  int64_t kv_dim() const { return k_proj.out_features(); }
  int64_t ff_dim() const { return gate_proj.out_features(); }
};

struct LlamaWeights {
  Embedding embed_tokens;
  std::vector<LlamaLayerWeights> layers;
  WeightView final_norm;  // (dim)
  Linear lm_head;         // (vocab, dim) or this rank's rows (gathered); the embedding table when tied and whole
};

// Binds every tensor the config calls for, checking each one's shape; throws Error naming the
// tensor and the expected and actual shapes. With `tp`, binds the rank's slices straight from the
// mapped checkpoint (nothing is copied) and gives each linear layer the collective its plan entry
// implies; a plan that cannot run (a strategy this model does not execute for the module, or
// layers whose pieces do not fit together) is refused by name. The checkpoint must outlive the
// result.
LlamaWeights bind_llama_weights(const ModelConfig& config, const Checkpoint& checkpoint,
                                const TensorParallelRank* tp = nullptr);

// Every weight view of a layer (absent ones included), experts and shared expert too.
std::vector<WeightView*> layer_views(LlamaLayerWeights& layer);

// Whether two layers are split alike: the same heads, intermediate size and collectives.
bool same_layer_split(const LlamaLayerWeights& a, const LlamaLayerWeights& b);

}  // namespace shardlm
