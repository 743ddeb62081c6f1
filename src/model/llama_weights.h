// The weights of a Llama-family decoder (Llama, Mistral, Qwen2, Qwen3), as views into the mapped
// checkpoint. Shapes use HF's [out_features, in_features] orientation; dim = hidden_size,
// q_dim = n_heads * head_dim, kv_dim = n_kv_heads * head_dim, ff_dim = intermediate_size.
#pragma once

#include <vector>

#include "core/weight_view.h"
#include "io/model_config.h"
#include "io/safetensors.h"

namespace shardlm {

struct LlamaLayerWeights {
  WeightView attn_norm;  // (dim)                   input_layernorm
  WeightView q_proj;     // (q_dim, dim)
  WeightView k_proj;     // (kv_dim, dim)
  WeightView v_proj;     // (kv_dim, dim)
  WeightView o_proj;     // (dim, q_dim)
  WeightView q_bias;     // (q_dim)   Qwen2, or Llama with attention_bias; absent otherwise
  WeightView k_bias;     // (kv_dim)
  WeightView v_bias;     // (kv_dim)
  WeightView o_bias;     // (dim)     Llama with attention_bias only
  WeightView q_norm;     // (head_dim) Qwen3 only
  WeightView k_norm;     // (head_dim) Qwen3 only
  WeightView mlp_norm;   // (dim)                   post_attention_layernorm
  WeightView gate_proj;  // (ff_dim, dim)
  WeightView up_proj;    // (ff_dim, dim)
  WeightView down_proj;  // (dim, ff_dim)
  WeightView gate_bias;  // (ff_dim) with mlp_bias only
  WeightView up_bias;    // (ff_dim)
  WeightView down_bias;  // (dim)
};

struct LlamaWeights {
  WeightView embed_tokens;  // (vocab, dim)
  std::vector<LlamaLayerWeights> layers;
  WeightView final_norm;    // (dim)
  WeightView lm_head;       // (vocab, dim); the embedding table itself when tie_word_embeddings
};

// Binds every tensor the config calls for, checking each one's shape; throws Error naming the
// tensor and the expected and actual shapes. The checkpoint must outlive the result.
LlamaWeights bind_llama_weights(const ModelConfig& config, const Checkpoint& checkpoint);

}  // namespace shardlm
