// The weights of a Llama-family decoder (Llama, Mistral, Qwen2, Qwen3), as views into the mapped
// checkpoint. Shapes use HF's [out_features, in_features] orientation; dim = hidden_size,
// q_dim = n_heads * head_dim, kv_dim = n_kv_heads * head_dim, ff_dim = intermediate_size.
#pragma once

#include <vector>

#include "core/weight_view.h"
#include "io/model_config.h"
#include "io/safetensors.h"
#include "model/tensor_parallel_rank.h"

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

// What this rank holds of the model, and which collective completes each split module. Without
// tensor parallelism everything is whole and no collective runs.
struct LlamaShard {
  int n_heads = 0, n_kv_heads = 0;  // local query and KV heads
  int64_t q_dim = 0, kv_dim = 0, ff_dim = 0;
  int64_t embed_vocab_begin = 0;    // first token id of a vocabulary-parallel embedding's rows
  bool embed_partial = false;       // embedding output is all-reduced (vocabulary-parallel)
  bool attention_partial = false;   // o_proj output is all-reduced (rowwise)
  bool mlp_partial = false;         // down_proj output is all-reduced (rowwise)
  int64_t head_block = 0;           // logits per rank in the all-gather (padded for uneven splits)
  bool head_gathered = false;       // logits are all-gathered (colwise lm_head)
};

struct LlamaWeights {
  WeightView embed_tokens;  // (vocab, dim), or this rank's vocabulary rows
  std::vector<LlamaLayerWeights> layers;  // local shapes: q_dim, kv_dim, ff_dim of `shard`
  WeightView final_norm;    // (dim)
  WeightView lm_head;       // (vocab, dim) or this rank's rows; the embedding table when tied and whole
  LlamaShard shard;
};

// Binds every tensor the config calls for, checking each one's shape; throws Error naming the
// tensor and the expected and actual shapes. With `tp`, binds the rank's slices straight from the
// mapped checkpoint (nothing is copied) and works out which collectives the plan implies. The
// checkpoint must outlive the result.
LlamaWeights bind_llama_weights(const ModelConfig& config, const Checkpoint& checkpoint,
                                const TensorParallelRank* tp = nullptr);

}  // namespace shardlm
