// Tensors are grouped into units by their Hugging Face name prefix; the per-token and per-row
// sizes come from the config alone, so a checkpoint and a --random shape of the same config plan
// the same run-time memory.
#include "plan/device_map/model_layout.h"

#include <algorithm>
#include <charconv>
#include <numeric>
#include <set>

#include <fmt/format.h>

#include "core/error.h"

namespace shardlm {
namespace {

struct TensorBytes {
  std::string name;
  int64_t bytes;
};

// The unit a tensor belongs to, as an index into ModelLayout::modules; throws for any other name.
size_t module_index(const std::string& tensor, int n_layers, const std::string& source) {
  constexpr std::string_view kLayers = "model.layers.";
  if (tensor.starts_with("model.embed_tokens.")) return 0;
  if (tensor.starts_with("model.norm.")) return size_t(n_layers) + 1;
  if (tensor.starts_with("lm_head.")) return size_t(n_layers) + 2;
  if (tensor.starts_with(kLayers)) {
    const char* first = tensor.data() + kLayers.size();
    const char* last = tensor.data() + tensor.size();
    int il = -1;
    const auto [end, error] = std::from_chars(first, last, il);
    if (error == std::errc() && end != first && end < last && *end == '.' && il >= 0 && il < n_layers)
      return size_t(il) + 1;
  }
  fail("{}: tensor {} belongs to none of model.embed_tokens, model.layers.0-{}, model.norm, lm_head, so it "
       "cannot be placed",
       source, tensor, n_layers - 1);
}

ModelLayout layout_from_tensors(const ModelConfig& config, const std::vector<TensorBytes>& tensors,
                                const std::string& source) {
  const int n_layers = config.num_hidden_layers;
  ModelLayout layout;
  layout.tied_head = config.tie_word_embeddings;
  layout.modules.push_back({"model.embed_tokens", ModuleKind::EMBED, -1, 0, {}, 0});
  for (int il = 0; il < n_layers; ++il)
    layout.modules.push_back({fmt::format("model.layers.{}", il), ModuleKind::LAYER, il, 0, {}, 0});
  layout.modules.push_back({"model.norm", ModuleKind::NORM, -1, 0, {}, 0});
  layout.modules.push_back({"lm_head", ModuleKind::HEAD, -1, 0, {}, 0});
  for (const TensorBytes& tensor : tensors) {
    const size_t index = module_index(tensor.name, n_layers, source);
    if (layout.tied_head && layout.modules[index].kind == ModuleKind::HEAD) continue;
    layout.modules[index].weight_bytes += tensor.bytes;
    if (tensor.name.find(".mlp.experts.") != std::string::npos) layout.modules[index].expert_bytes += tensor.bytes;
    layout.modules[index].tensors.push_back(tensor.name);
  }
  for (const ModuleWeights& module : layout.modules)
    if (module.tensors.empty() && !(module.kind == ModuleKind::HEAD && layout.tied_head))
      fail("{}: no tensor of {} found; the config implies it", source, module.name);

  const int64_t kv_dim = int64_t(config.num_key_value_heads) * config.head_dim;
  layout.kv_bytes_per_token = 2 * kv_dim * int64_t(dtype_size(DType::BF16));
  layout.activation_bytes_per_row = activation_bytes_per_row(config);
  layout.logits_bytes_per_sequence = int64_t(config.hidden_size) * 2 + int64_t(config.vocab_size) * 4;
  return layout;
}

int64_t numel_of(const std::vector<int64_t>& shape) {
  return std::accumulate(shape.begin(), shape.end(), int64_t(1), std::multiplies<>());
}

}  // namespace

int64_t ModelLayout::total_weight_bytes() const {
  int64_t total = 0;
  for (const ModuleWeights& module : modules) total += module.weight_bytes;
  return total;
}

std::vector<TensorShape> llama_tensor_shapes(const ModelConfig& config) {
  const int64_t dim = config.hidden_size, ff_dim = config.intermediate_size, vocab = config.vocab_size;
  const int64_t q_dim = int64_t(config.num_attention_heads) * config.head_dim;
  const int64_t kv_dim = int64_t(config.num_key_value_heads) * config.head_dim;
  std::vector<TensorShape> tensors = {{"model.embed_tokens.weight", {vocab, dim}}};
  for (int il = 0; il < config.num_hidden_layers; ++il) {
    const std::string attn = fmt::format("model.layers.{}.self_attn.", il);
    const std::string mlp = fmt::format("model.layers.{}.mlp.", il);
    tensors.push_back({fmt::format("model.layers.{}.input_layernorm.weight", il), {dim}});
    tensors.push_back({attn + "q_proj.weight", {q_dim, dim}});
    tensors.push_back({attn + "k_proj.weight", {kv_dim, dim}});
    tensors.push_back({attn + "v_proj.weight", {kv_dim, dim}});
    tensors.push_back({attn + "o_proj.weight", {dim, q_dim}});
    if (config.attention_bias) {
      tensors.push_back({attn + "q_proj.bias", {q_dim}});
      tensors.push_back({attn + "k_proj.bias", {kv_dim}});
      tensors.push_back({attn + "v_proj.bias", {kv_dim}});
    }
    if (config.attention_output_bias) tensors.push_back({attn + "o_proj.bias", {dim}});
    if (config.qk_norm) {
      tensors.push_back({attn + "q_norm.weight", {config.head_dim}});
      tensors.push_back({attn + "k_norm.weight", {config.head_dim}});
    }
    tensors.push_back({fmt::format("model.layers.{}.post_attention_layernorm.weight", il), {dim}});
    if (config.is_sparse_layer(il)) {
      const MoeConfig& moe = config.moe;
      const int64_t expert_ff = moe.expert_intermediate_size, shared_ff = moe.shared_expert_intermediate_size;
      tensors.push_back({mlp + "gate.weight", {moe.num_experts, dim}});
      for (int e = 0; e < moe.num_experts; ++e) {
        const std::string expert = fmt::format("{}experts.{}.", mlp, e);
        tensors.push_back({expert + "gate_proj.weight", {expert_ff, dim}});
        tensors.push_back({expert + "up_proj.weight", {expert_ff, dim}});
        tensors.push_back({expert + "down_proj.weight", {dim, expert_ff}});
      }
      if (shared_ff > 0) {
        tensors.push_back({mlp + "shared_expert.gate_proj.weight", {shared_ff, dim}});
        tensors.push_back({mlp + "shared_expert.up_proj.weight", {shared_ff, dim}});
        tensors.push_back({mlp + "shared_expert.down_proj.weight", {dim, shared_ff}});
        tensors.push_back({mlp + "shared_expert_gate.weight", {1, dim}});
      }
      continue;
    }
    tensors.push_back({mlp + "gate_proj.weight", {ff_dim, dim}});
    tensors.push_back({mlp + "up_proj.weight", {ff_dim, dim}});
    tensors.push_back({mlp + "down_proj.weight", {dim, ff_dim}});
    if (config.mlp_bias) {
      tensors.push_back({mlp + "gate_proj.bias", {ff_dim}});
      tensors.push_back({mlp + "up_proj.bias", {ff_dim}});
      tensors.push_back({mlp + "down_proj.bias", {dim}});
    }
  }
  tensors.push_back({"model.norm.weight", {dim}});
  if (!config.tie_word_embeddings) tensors.push_back({"lm_head.weight", {vocab, dim}});
  return tensors;
}

std::vector<std::string> unused_tensor_names(const ModelConfig& config, const Checkpoint& checkpoint) {
  std::set<std::string> used;
  for (TensorShape& tensor : llama_tensor_shapes(config)) used.insert(std::move(tensor.name));
  std::vector<std::string> unused;
  for (const auto& [name, tensor] : checkpoint.tensors()) {
    if (used.contains(name) || name.ends_with(".rotary_emb.inv_freq")) continue;
    if (name == "lm_head.weight" && config.tie_word_embeddings) continue;
    unused.push_back(name);
  }
  return unused;
}

int64_t activation_bytes_per_row(const ModelConfig& config) {
  const MoeConfig& moe = config.moe;
  // Qwen2-MoE's shared expert runs through the dense MLP's buffers.
  const int64_t dim = config.hidden_size, ff_dim = std::max(config.intermediate_size, moe.shared_expert_intermediate_size);
  const int64_t q_dim = int64_t(config.num_attention_heads) * config.head_dim;
  const int64_t qkv_dim = q_dim + 2 * int64_t(config.num_key_value_heads) * config.head_dim;
  const int64_t f32 = 4, bf16 = 2, i32 = 4;
  const int64_t dense = dim * f32           // residual
                        + dim * bf16        // normed
                        + qkv_dim * bf16    // qkv
                        + 2 * q_dim * bf16  // q, attention output
                        + 2 * dim * bf16    // o_proj output, MLP output
                        + 2 * ff_dim * bf16 // gate_up
                        + ff_dim * bf16;    // SwiGLU output
  if (!moe.present()) return dense;
  const int64_t top_k = moe.num_experts_per_tok;
  return dense + moe.num_experts * f32                     // router logits
         + top_k * (i32 + f32 + i32)                       // chosen experts, weights, grouped pairs
         + top_k * (moe.expert_intermediate_size * bf16 + dim * f32)  // each pair's activations, output
         + top_k * (dim * bf16 + 2 * moe.expert_intermediate_size * bf16 + i32)  // grouped GEMMs' rows, gate/up, places
         + dim * f32;                                      // the rank's partial sum
}

ModelLayout model_layout_from_checkpoint(const ModelConfig& config, const Checkpoint& checkpoint,
                                         std::optional<DType> load_dtype) {
  std::vector<TensorBytes> tensors;
  for (const auto& [name, tensor] : checkpoint.tensors()) {
    const size_t element_bytes = load_dtype ? std::min(dtype_size(tensor.dtype), dtype_size(*load_dtype))
                                            : dtype_size(tensor.dtype);
    tensors.push_back({name, tensor.numel() * int64_t(element_bytes)});
  }
  return layout_from_tensors(config, tensors, checkpoint.dir().string());
}

ModelLayout model_layout_from_config(const ModelConfig& config, DType dtype) {
  std::vector<TensorBytes> tensors;
  for (const TensorShape& tensor : llama_tensor_shapes(config))
    tensors.push_back({tensor.name, numel_of(tensor.shape) * int64_t(dtype_size(dtype))});
  return layout_from_tensors(config, tensors, config.architecture_name + " config");
}

}  // namespace shardlm
