// What the device-map planner places: a decoder model cut into the units that never split, with
// their weight bytes and the per-token sizes of what they need at run time. The units are
// model.embed_tokens, each model.layers.N, model.norm and lm_head, in execution order; a tied
// lm_head has no bytes of its own (it IS the embedding table) and must share its device.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "io/model_config.h"
#include "io/safetensors.h"

namespace shardlm {

enum class ModuleKind { EMBED, LAYER, NORM, HEAD };

struct ModuleWeights {
  std::string name;                  // "model.embed_tokens", "model.layers.7", "model.norm", "lm_head"
  ModuleKind kind = ModuleKind::LAYER;
  int layer = -1;                    // il for LAYER, -1 otherwise
  int64_t weight_bytes = 0;          // 0 for a tied head
  std::vector<std::string> tensors;  // full tensor names, e.g. "model.layers.7.mlp.up_proj.weight"
  int64_t expert_bytes = 0;          // of weight_bytes, a mixture-of-experts layer's experts (mlp.experts.*)
};

struct ModelLayout {
  std::vector<ModuleWeights> modules;  // embed, layers 0..n-1, norm, head
  bool tied_head = false;              // lm_head is model.embed_tokens' weight (tie_word_embeddings)
  // K and V of one token in one layer, bf16 as the CUDA cache holds them: 2 * kv_dim * 2 bytes.
  int64_t kv_bytes_per_token = 0;
  // Activation buffers of one row in flight through a layer (see activation_bytes_per_row()).
  int64_t activation_bytes_per_row = 0;
  // What the head's device holds per sequence for sampling: the final hidden row and f32 logits.
  int64_t logits_bytes_per_sequence = 0;

  int64_t total_weight_bytes() const;
};

// A tensor of the model as the checkpoint stores it.
struct TensorShape {
  std::string name;
  std::vector<int64_t> shape;
};

// Every tensor a Llama-family checkpoint with this config holds, under Hugging Face's names (the
// same set bind_llama_weights binds; experts per expert, as a Checkpoint presents them). Lets a
// --random shape be planned without a checkpoint.
std::vector<TensorShape> llama_tensor_shapes(const ModelConfig& config);

// The checkpoint's tensors that a model with this config never reads, in name order, as
// Transformers lists them when it loads ("Some weights of the model checkpoint ... were not
// used"): layers beyond num_hidden_layers, biases the config does not call for, stray names. Like
// Transformers, leaves out a tied model's stored lm_head.weight and the rotary inv_freq buffers
// that old Llama checkpoints carry.
std::vector<std::string> unused_tensor_names(const ModelConfig& config, const Checkpoint& checkpoint);

// Bytes per row of the activation buffers the CUDA backend allocates for a forward pass: f32
// residual, bf16 normed input, fused qkv, q, attention output, projection, fused gate_up, SwiGLU
// output and MLP output.
int64_t activation_bytes_per_row(const ModelConfig& config);

// Layout from the checkpoint's own tensors and dtypes. With load_dtype, each tensor counts as it
// will be held after loading: narrowed to load_dtype if that is smaller (never widened), as
// Accelerate's compute_module_sizes(dtype=...) counts. A tensor outside the four units is an error;
// a stored lm_head.weight of a tied model is left out, since the model never reads it.
ModelLayout model_layout_from_checkpoint(const ModelConfig& config, const Checkpoint& checkpoint,
                                         std::optional<DType> load_dtype);

// Layout of a checkpoint that does not exist (a --random shape), every tensor in `dtype`.
ModelLayout model_layout_from_config(const ModelConfig& config, DType dtype);

}  // namespace shardlm
