// Binds HF tensor names (model.layers.{il}.self_attn.q_proj.weight, ...) to the weight structs.
// Names stay exactly the HF ones because device maps and TP plans are matched against them. Under
// tensor parallelism each view is the rank's slice, read in place (a rowwise slice keeps the
// stored row stride), and the plan's strategies say which module outputs need a collective.
#include "model/llama_weights.h"

#include <fmt/ranges.h>

#include <algorithm>

#include "core/error.h"

namespace shardlm {
namespace {

class WeightBinder {
 public:
  WeightBinder(const Checkpoint& checkpoint, const TensorParallelRank* tp) : checkpoint_(checkpoint), tp_(tp) {}

  // The view this rank uses of `name`, whose stored shape must be `full_shape`.
  WeightView bind(const std::string& name, const std::vector<int64_t>& full_shape) const {
    const TpWeight* planned = tp_ ? &tp_->plan->weight(name) : nullptr;
    // A tied lm_head is planned as its own weight but read from the embedding table.
    const TensorInfo& tensor = checkpoint_.get(planned ? planned->source_name : name);
    if (tensor.shape != full_shape) {
      fail("{}: tensor {} has shape [{}], the config implies [{}]", tensor.file.string(), tensor.name,
           fmt::join(tensor.shape, ", "), fmt::join(full_shape, ", "));
    }
    if (!planned) {
      return {tensor.dtype, tensor.data, full_shape.size() == 2 ? full_shape[0] : 1, full_shape.back(), 0};
    }
    const std::vector<ShardView> views = shard_views(*planned, tp_->rank, tensor);
    if (views.size() != 1)
      fail("tp plan: {} is split into {} segments ({}); the CPU backend executes single-slice shards only", name,
           views.size(), planned->strategy_name);
    const ShardView& view = views[0];
    return {view.dtype, view.data, view.rows, view.cols, view.row_stride};
  }

  TpStrategy strategy(const std::string& name) const {
    return tp_ ? tp_->plan->weight(name).strategy : TpStrategy::REPLICATE;
  }

  // Refuses strategies this backend does not execute for the module, by name.
  void require(const std::string& name, std::initializer_list<TpStrategy> executed) const {
    const TpStrategy used = strategy(name);
    if (std::find(executed.begin(), executed.end(), used) != executed.end()) return;
    std::string names;
    for (TpStrategy s : executed) names += (names.empty() ? "" : ", ") + std::string(strategy_traits(s).name);
    fail("tp plan: {} uses {}, which the CPU backend does not execute for this module (it runs {})", name,
         strategy_traits(used).name, names);
  }

  const TensorSlice& slice(const std::string& name) const { return tp_->plan->slice(name, tp_->rank); }
  bool parallel() const { return tp_ != nullptr; }

 private:
  const Checkpoint& checkpoint_;
  const TensorParallelRank* tp_;
};

// Every layer must hold the same local shapes, consistent with whole heads.
void check_layer_shapes(const ModelConfig& config, const LlamaShard& shard, const LlamaLayerWeights& layer, int il) {
  const auto mismatch = [&](const char* what, int64_t actual, int64_t expected) {
    if (actual != expected)
      fail("tp plan: model.layers.{} {} is {} on this rank, but the layer's other projections imply {}", il, what,
           actual, expected);
  };
  mismatch("k_proj rows", layer.k_proj.rows, shard.kv_dim);
  mismatch("v_proj rows", layer.v_proj.rows, shard.kv_dim);
  mismatch("o_proj columns", layer.o_proj.cols, shard.q_dim);
  mismatch("up_proj rows", layer.up_proj.rows, shard.ff_dim);
  mismatch("down_proj columns", layer.down_proj.cols, shard.ff_dim);
  mismatch("o_proj rows", layer.o_proj.rows, config.hidden_size);
  mismatch("down_proj rows", layer.down_proj.rows, config.hidden_size);
}

LlamaShard describe_shard(const ModelConfig& config, const WeightBinder& bind, const LlamaWeights& weights) {
  const LlamaLayerWeights& first = weights.layers.front();
  LlamaShard shard;
  shard.q_dim = first.q_proj.rows;
  shard.kv_dim = first.k_proj.rows;
  shard.ff_dim = first.gate_proj.rows;
  if (shard.q_dim % config.head_dim != 0 || shard.kv_dim % config.head_dim != 0)
    fail("tp plan: q_proj/k_proj slices of {}/{} rows are not whole heads of {}", shard.q_dim, shard.kv_dim,
         config.head_dim);
  shard.n_heads = int(shard.q_dim / config.head_dim);
  shard.n_kv_heads = int(shard.kv_dim / config.head_dim);
  if (shard.n_kv_heads == 0 || shard.n_heads % shard.n_kv_heads != 0)
    fail("tp plan: this rank holds {} query heads and {} KV heads, which do not group", shard.n_heads,
         shard.n_kv_heads);
  if (!bind.parallel()) return shard;

  const std::string layer0 = "model.layers.0.";
  shard.attention_partial = bind.strategy(layer0 + "self_attn.o_proj.weight") == TpStrategy::ROWWISE;
  shard.mlp_partial = bind.strategy(layer0 + "mlp.down_proj.weight") == TpStrategy::ROWWISE;
  if (bind.strategy("model.embed_tokens.weight") == TpStrategy::EMBEDDING_ROWWISE) {
    shard.embed_partial = true;
    shard.embed_vocab_begin = bind.slice("model.embed_tokens.weight").segments.at(0).offset;
  }
  if (bind.strategy("lm_head.weight") == TpStrategy::COLWISE_GATHER_OUTPUT) {
    const TensorSlice& slice = bind.slice("lm_head.weight");
    shard.head_gathered = true;
    shard.head_block = slice.block;
  }
  return shard;
}

}  // namespace

LlamaWeights bind_llama_weights(const ModelConfig& config, const Checkpoint& checkpoint, const TensorParallelRank* tp) {
  const WeightBinder bind(checkpoint, tp);
  const int64_t dim = config.hidden_size;
  const int64_t q_dim = int64_t(config.num_attention_heads) * config.head_dim;
  const int64_t kv_dim = int64_t(config.num_key_value_heads) * config.head_dim;
  const int64_t ff_dim = config.intermediate_size;
  const int64_t vocab = config.vocab_size;
  using S = TpStrategy;

  LlamaWeights weights;
  bind.require("model.embed_tokens.weight", {S::REPLICATE, S::EMBEDDING_ROWWISE});
  weights.embed_tokens = bind.bind("model.embed_tokens.weight", {vocab, dim});
  bind.require("model.norm.weight", {S::REPLICATE});
  weights.final_norm = bind.bind("model.norm.weight", {dim});
  if (config.tie_word_embeddings && !bind.parallel()) {
    weights.lm_head = weights.embed_tokens;
  } else {
    bind.require("lm_head.weight", {S::REPLICATE, S::COLWISE_GATHER_OUTPUT});
    weights.lm_head = bind.bind("lm_head.weight", {vocab, dim});
  }

  weights.layers.resize(size_t(config.num_hidden_layers));
  for (int il = 0; il < config.num_hidden_layers; ++il) {
    const std::string prefix = fmt::format("model.layers.{}.", il);
    const std::string attn = prefix + "self_attn.";
    const std::string mlp = prefix + "mlp.";
    for (const std::string& name : {attn + "q_proj.weight", attn + "k_proj.weight", attn + "v_proj.weight",
                                    mlp + "gate_proj.weight", mlp + "up_proj.weight"})
      bind.require(name, {S::REPLICATE, S::COLWISE});
    for (const std::string& name : {attn + "o_proj.weight", mlp + "down_proj.weight"})
      bind.require(name, {S::REPLICATE, S::ROWWISE});
    LlamaLayerWeights& layer = weights.layers[size_t(il)];
    layer.attn_norm = bind.bind(prefix + "input_layernorm.weight", {dim});
    layer.mlp_norm = bind.bind(prefix + "post_attention_layernorm.weight", {dim});
    layer.q_proj = bind.bind(attn + "q_proj.weight", {q_dim, dim});
    layer.k_proj = bind.bind(attn + "k_proj.weight", {kv_dim, dim});
    layer.v_proj = bind.bind(attn + "v_proj.weight", {kv_dim, dim});
    layer.o_proj = bind.bind(attn + "o_proj.weight", {dim, q_dim});
    if (config.attention_bias) {
      layer.q_bias = bind.bind(attn + "q_proj.bias", {q_dim});
      layer.k_bias = bind.bind(attn + "k_proj.bias", {kv_dim});
      layer.v_bias = bind.bind(attn + "v_proj.bias", {kv_dim});
    }
    if (config.attention_output_bias) layer.o_bias = bind.bind(attn + "o_proj.bias", {dim});
    if (config.qk_norm) {
      layer.q_norm = bind.bind(attn + "q_norm.weight", {config.head_dim});
      layer.k_norm = bind.bind(attn + "k_norm.weight", {config.head_dim});
    }
    layer.gate_proj = bind.bind(mlp + "gate_proj.weight", {ff_dim, dim});
    layer.up_proj = bind.bind(mlp + "up_proj.weight", {ff_dim, dim});
    layer.down_proj = bind.bind(mlp + "down_proj.weight", {dim, ff_dim});
    if (config.mlp_bias) {
      layer.gate_bias = bind.bind(mlp + "gate_proj.bias", {ff_dim});
      layer.up_bias = bind.bind(mlp + "up_proj.bias", {ff_dim});
      layer.down_bias = bind.bind(mlp + "down_proj.bias", {dim});
    }
  }
  weights.shard = describe_shard(config, bind, weights);
  for (int il = 0; il < config.num_hidden_layers; ++il)
    check_layer_shapes(config, weights.shard, weights.layers[size_t(il)], il);
  return weights;
}

}  // namespace shardlm
