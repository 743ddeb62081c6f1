// Binds HF tensor names (model.layers.{il}.self_attn.q_proj.weight, ...) to the weight structs.
// Names stay exactly the HF ones because device maps and TP plans are matched against them.
#include "model/llama_weights.h"

#include <fmt/ranges.h>

#include "core/error.h"

namespace shardlm {
namespace {

class WeightBinder {
 public:
  explicit WeightBinder(const Checkpoint& checkpoint) : checkpoint_(checkpoint) {}

  WeightView required(const std::string& name, std::vector<int64_t> expected_shape) const {
    return view(checkpoint_.get(name), expected_shape);
  }

 private:
  WeightView view(const TensorInfo& tensor, const std::vector<int64_t>& expected_shape) const {
    if (tensor.shape != expected_shape) {
      fail("{}: tensor {} has shape [{}], the config implies [{}]", tensor.file.string(), tensor.name,
           fmt::join(tensor.shape, ", "), fmt::join(expected_shape, ", "));
    }
    WeightView result;
    result.dtype = tensor.dtype;
    result.data = tensor.data;
    result.rows = expected_shape.size() == 2 ? expected_shape[0] : 1;
    result.cols = expected_shape.back();
    return result;
  }

  const Checkpoint& checkpoint_;
};

}  // namespace

LlamaWeights bind_llama_weights(const ModelConfig& config, const Checkpoint& checkpoint) {
  const WeightBinder bind(checkpoint);
  const int64_t dim = config.hidden_size;
  const int64_t q_dim = int64_t(config.num_attention_heads) * config.head_dim;
  const int64_t kv_dim = int64_t(config.num_key_value_heads) * config.head_dim;
  const int64_t ff_dim = config.intermediate_size;
  const int64_t vocab = config.vocab_size;

  LlamaWeights weights;
  weights.embed_tokens = bind.required("model.embed_tokens.weight", {vocab, dim});
  weights.final_norm = bind.required("model.norm.weight", {dim});
  if (config.tie_word_embeddings) {
    weights.lm_head = weights.embed_tokens;
  } else {
    weights.lm_head = bind.required("lm_head.weight", {vocab, dim});
  }

  weights.layers.resize(size_t(config.num_hidden_layers));
  for (int il = 0; il < config.num_hidden_layers; ++il) {
    const std::string prefix = fmt::format("model.layers.{}.", il);
    const std::string attn = prefix + "self_attn.";
    const std::string mlp = prefix + "mlp.";
    LlamaLayerWeights& layer = weights.layers[size_t(il)];
    layer.attn_norm = bind.required(prefix + "input_layernorm.weight", {dim});
    layer.mlp_norm = bind.required(prefix + "post_attention_layernorm.weight", {dim});
    layer.q_proj = bind.required(attn + "q_proj.weight", {q_dim, dim});
    layer.k_proj = bind.required(attn + "k_proj.weight", {kv_dim, dim});
    layer.v_proj = bind.required(attn + "v_proj.weight", {kv_dim, dim});
    layer.o_proj = bind.required(attn + "o_proj.weight", {dim, q_dim});
    if (config.attention_bias) {
      layer.q_bias = bind.required(attn + "q_proj.bias", {q_dim});
      layer.k_bias = bind.required(attn + "k_proj.bias", {kv_dim});
      layer.v_bias = bind.required(attn + "v_proj.bias", {kv_dim});
    }
    if (config.attention_output_bias) layer.o_bias = bind.required(attn + "o_proj.bias", {dim});
    if (config.qk_norm) {
      layer.q_norm = bind.required(attn + "q_norm.weight", {config.head_dim});
      layer.k_norm = bind.required(attn + "k_norm.weight", {config.head_dim});
    }
    layer.gate_proj = bind.required(mlp + "gate_proj.weight", {ff_dim, dim});
    layer.up_proj = bind.required(mlp + "up_proj.weight", {ff_dim, dim});
    layer.down_proj = bind.required(mlp + "down_proj.weight", {dim, ff_dim});
    if (config.mlp_bias) {
      layer.gate_bias = bind.required(mlp + "gate_proj.bias", {ff_dim});
      layer.up_bias = bind.required(mlp + "up_proj.bias", {ff_dim});
      layer.down_bias = bind.required(mlp + "down_proj.bias", {dim});
    }
  }
  return weights;
}

}  // namespace shardlm
