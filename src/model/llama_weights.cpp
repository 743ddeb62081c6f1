// Binds HF tensor names (model.layers.{il}.self_attn.q_proj.weight, ...) to the weight structs; a
// mixture-of-experts layer's MLP is bound by model/moe_weights.cpp.
// Names stay exactly the HF ones because device maps and TP plans are matched against them. Under
// tensor parallelism each view is the rank's slice, read in place (a rowwise slice keeps the
// stored row stride), and each linear layer takes the collective of its own plan entry, so layers
// may be split differently (one layer's MLP replicated, the others' colwise/rowwise).
#include "model/llama_weights.h"

#include <fmt/ranges.h>

#include <algorithm>

#include "core/error.h"
#include "model/weight_binder.h"

namespace shardlm {
namespace {

using S = TpStrategy;

// The last projection of a block (o_proj of self_attn, down_proj of mlp) is summed over the ranks
// either by its own strategy (rowwise) or, when local_rowwise, by an all_reduce entry on the block.
void complete_block(const WeightBinder& bind, const std::string& block, const std::string& projection,
                    Linear& linear) {
  const std::string weight_name = block + "." + projection + ".weight";
  const TpStrategy strategy = bind.strategy(weight_name);
  if (!bind.all_reduces(block)) {
    if (strategy == S::LOCAL_ROWWISE)
      fail("tp plan: {} is local_rowwise, but no all_reduce entry sums the output of {}", weight_name, block);
    return;
  }
  if (strategy != S::LOCAL_ROWWISE)
    fail("tp plan: {} is all_reduce, so {} must be local_rowwise, not {} (its output would be summed wrongly)", block,
         weight_name, strategy_traits(strategy).name);
  linear.collective = TpCollective::ALL_REDUCE;
}

// The pieces of one layer must fit together on this rank: whole heads that group, k and v alike,
// and each block's last projection taking what the ones before it produce.
void check_layer(const ModelConfig& config, const WeightBinder& bind, LlamaLayerWeights& layer, int il) {
  const std::string attn = fmt::format("model.layers.{}.self_attn.", il);
  const std::string mlp = fmt::format("model.layers.{}.mlp.", il);
  if (bind.splits(attn + "q_proj.weight") != bind.splits(attn + "k_proj.weight") ||
      bind.splits(attn + "k_proj.weight") != bind.splits(attn + "v_proj.weight"))
    fail("tp plan: {}q_proj, k_proj and v_proj must be split alike (all by heads, or all whole): they are {}, {} and {}",
         attn, strategy_traits(bind.strategy(attn + "q_proj.weight")).name,
         strategy_traits(bind.strategy(attn + "k_proj.weight")).name,
         strategy_traits(bind.strategy(attn + "v_proj.weight")).name);
  const int64_t q_dim = layer.q_dim(), kv_dim = layer.kv_dim();
  if (q_dim % config.head_dim != 0 || kv_dim % config.head_dim != 0)
    fail("tp plan: {}q_proj/k_proj slices of {}/{} rows are not whole heads of {}", attn, q_dim, kv_dim,
         config.head_dim);
  layer.n_heads = int(q_dim / config.head_dim);
  layer.n_kv_heads = int(kv_dim / config.head_dim);
  if (layer.n_kv_heads == 0 || layer.n_heads % layer.n_kv_heads != 0)
    fail("tp plan: {} holds {} query heads and {} KV heads on this rank, which do not group", attn, layer.n_heads,
         layer.n_kv_heads);
  const auto fits = [](const std::string& name, const Linear& linear, int64_t produced, const char* producer) {
    if (linear.in_features() != produced)
      fail("tp plan: {} takes {} input features on this rank, but {} gives {} (a block split by its first "
           "projections needs its last one rowwise, a whole block needs it whole)",
           name, linear.in_features(), producer, produced);
  };
  fits(attn + "o_proj", layer.o_proj, q_dim, "q_proj");
  if (layer.moe) return;  // model/moe_weights.cpp checks the experts
  if (bind.splits(mlp + "gate_proj.weight") != bind.splits(mlp + "up_proj.weight"))
    fail("tp plan: {}gate_proj and up_proj must be split alike: they are {} and {}", mlp,
         strategy_traits(bind.strategy(mlp + "gate_proj.weight")).name,
         strategy_traits(bind.strategy(mlp + "up_proj.weight")).name);
  fits(mlp + "down_proj", layer.down_proj, layer.ff_dim(), "gate_proj/up_proj");
}

Embedding bind_embedding(const WeightBinder& bind, int64_t vocab, int64_t dim) {
  const std::string name = "model.embed_tokens.weight";
  bind.require(name, {S::REPLICATE, S::EMBEDDING_ROWWISE});
  Embedding embedding;
  embedding.table = bind.bind(name, {vocab, dim});
  if (bind.strategy(name) == S::EMBEDDING_ROWWISE) {
    embedding.collective = TpCollective::ALL_REDUCE;
    embedding.vocab_begin = bind.slice(name).segments.at(0).offset;
  }
  return embedding;
}

}  // namespace

LlamaWeights bind_llama_weights(const ModelConfig& config, const Checkpoint& checkpoint, const TensorParallelRank* tp) {
  const WeightBinder bind(checkpoint, tp);
  const int64_t dim = config.hidden_size;
  const int64_t q_dim = int64_t(config.num_attention_heads) * config.head_dim;
  const int64_t kv_dim = int64_t(config.num_key_value_heads) * config.head_dim;
  const int64_t ff_dim = config.intermediate_size;
  const int64_t vocab = config.vocab_size;

  LlamaWeights weights;
  weights.embed_tokens = bind_embedding(bind, vocab, dim);
  bind.require("model.norm.weight", {S::REPLICATE});
  weights.final_norm = bind.bind("model.norm.weight", {dim});
  if (config.tie_word_embeddings && !bind.parallel()) {
    weights.lm_head.weight = weights.embed_tokens.table;
  } else {
    weights.lm_head = bind_linear(bind, "lm_head", vocab, dim, false, {S::REPLICATE, S::COLWISE_GATHER_OUTPUT});
    if (weights.lm_head.collective == TpCollective::ALL_GATHER)
      weights.lm_head.gather_block = bind.slice("lm_head.weight").block;
  }

  const std::initializer_list<TpStrategy> first_projections = {S::REPLICATE, S::COLWISE, S::LOCAL_COLWISE};
  const std::initializer_list<TpStrategy> last_projections = {S::REPLICATE, S::ROWWISE, S::LOCAL_ROWWISE};
  weights.layers.resize(size_t(config.num_hidden_layers));
  for (int il = 0; il < config.num_hidden_layers; ++il) {
    const std::string prefix = fmt::format("model.layers.{}.", il);
    const std::string attn = prefix + "self_attn";
    const std::string mlp = prefix + "mlp";
    LlamaLayerWeights& layer = weights.layers[size_t(il)];
    layer.attn_norm = bind.bind(prefix + "input_layernorm.weight", {dim});
    layer.mlp_norm = bind.bind(prefix + "post_attention_layernorm.weight", {dim});
    layer.q_proj = bind_linear(bind, attn + ".q_proj", q_dim, dim, config.attention_bias, first_projections);
    layer.k_proj = bind_linear(bind, attn + ".k_proj", kv_dim, dim, config.attention_bias, first_projections);
    layer.v_proj = bind_linear(bind, attn + ".v_proj", kv_dim, dim, config.attention_bias, first_projections);
    layer.o_proj = bind_linear(bind, attn + ".o_proj", dim, q_dim, config.attention_output_bias, last_projections);
    complete_block(bind, attn, "o_proj", layer.o_proj);
    if (config.qk_norm) {
      layer.q_norm = bind.bind(attn + ".q_norm.weight", {config.head_dim});
      layer.k_norm = bind.bind(attn + ".k_norm.weight", {config.head_dim});
    }
    if (config.is_sparse_layer(il)) {
      layer.moe = bind_sparse_moe(config, bind, il);
    } else {
      layer.gate_proj = bind_linear(bind, mlp + ".gate_proj", ff_dim, dim, config.mlp_bias, first_projections);
      layer.up_proj = bind_linear(bind, mlp + ".up_proj", ff_dim, dim, config.mlp_bias, first_projections);
      layer.down_proj = bind_linear(bind, mlp + ".down_proj", dim, ff_dim, config.mlp_bias, last_projections);
      complete_block(bind, mlp, "down_proj", layer.down_proj);
    }
    check_layer(config, bind, layer, il);
  }
  if (tp) {
    for (const TpModule& module : tp->plan->modules()) {
      const bool is_block = module.name.ends_with(".self_attn") || module.name.ends_with(".mlp") ||
                            (config.moe.present() && module.name.ends_with(".mlp.experts"));
      if (!is_block || !module.name.starts_with("model.layers."))
        fail("tp plan: \"{}\" ({}) applies to {}; this model sums only the output of a layer's self_attn, mlp{}",
             module.pattern, module.strategy_name, module.name, config.moe.present() ? " or mlp.experts" : "");
      if (module.strategy == S::MOE_TP_EXPERTS && !module.name.ends_with(".mlp.experts"))
        fail("tp plan: \"{}\" (moe_tp_experts) applies to {}; it sums a layer's mlp.experts", module.pattern, module.name);
    }
  }
  return weights;
}

std::vector<WeightView*> layer_views(LlamaLayerWeights& layer) {
  std::vector<WeightView*> views = {&layer.attn_norm, &layer.q_norm, &layer.k_norm, &layer.mlp_norm};
  const auto add = [&](Linear& linear) { views.insert(views.end(), {&linear.weight, &linear.bias}); };
  for (Linear* linear : {&layer.q_proj, &layer.k_proj, &layer.v_proj, &layer.o_proj, &layer.gate_proj, &layer.up_proj,
                         &layer.down_proj})
    add(*linear);
  if (!layer.moe) return views;
  const auto add_expert = [&](ExpertWeights& expert) {
    add(expert.gate_proj);
    add(expert.up_proj);
    add(expert.down_proj);
  };
  add(layer.moe->router);
  for (ExpertWeights& expert : layer.moe->experts) add_expert(expert);
  if (layer.moe->shared_expert) add_expert(*layer.moe->shared_expert);
  add(layer.moe->shared_expert_gate);
  return views;
}

bool same_layer_split(const LlamaLayerWeights& a, const LlamaLayerWeights& b) {
  const bool same_experts = a.moe.has_value() == b.moe.has_value() &&
                            (!a.moe || (a.moe->num_experts() == b.moe->num_experts() &&
                                        a.moe->experts_partial == b.moe->experts_partial));
  return a.n_heads == b.n_heads && a.n_kv_heads == b.n_kv_heads && a.ff_dim() == b.ff_dim() && same_experts &&
         a.o_proj.collective == b.o_proj.collective && a.down_proj.collective == b.down_proj.collective;
}

}  // namespace shardlm
