// Tests for the device mesh, the strategy table and plan resolution on synthetic weight lists of
// published shapes (Llama-3-8B, Qwen2.5-7B, Qwen3-8B, Mistral-7B): Transformers' default plans,
// head-aware splits with KV-head replication, biases, tied heads with an uneven vocabulary, packed
// weights, module-level all-reduce, every validation error (each message checked for the module
// and the numbers), and the per-rank byte summary.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "error_message.h"
#include "core/error.h"
#include "io/model_config.h"
#include "plan/placement.h"
#include "plan/tp_plan.h"
#include "plan/tp_plan_summary.h"

namespace shardlm {
namespace {


nlohmann::json base_config(const std::string& architecture) {
  return {{"architectures", {architecture}},
          {"hidden_size", 4096},
          {"intermediate_size", 14336},
          {"num_hidden_layers", 2},
          {"num_attention_heads", 32},
          {"num_key_value_heads", 8},
          {"vocab_size", 128256},
          {"rms_norm_eps", 1e-5},
          {"rope_theta", 500000.0},
          {"hidden_act", "silu"}};
}

ModelConfig make_config(const nlohmann::json& json) { return ModelConfig::parse(json.dump(), "config.json"); }

// The tensors bind_llama_weights expects for `config`, bf16.
std::vector<WeightSpec> llama_specs(const ModelConfig& c) {
  const int64_t dim = c.hidden_size, q_dim = int64_t(c.num_attention_heads) * c.head_dim,
                kv_dim = int64_t(c.num_key_value_heads) * c.head_dim, ff = c.intermediate_size, vocab = c.vocab_size;
  std::vector<WeightSpec> specs = {{"model.embed_tokens.weight", {vocab, dim}, DType::BF16},
                                   {"model.norm.weight", {dim}, DType::BF16}};
  if (!c.tie_word_embeddings) specs.push_back({"lm_head.weight", {vocab, dim}, DType::BF16});
  for (int il = 0; il < c.num_hidden_layers; ++il) {
    const std::string p = "model.layers." + std::to_string(il) + ".";
    auto add = [&](const std::string& name, std::vector<int64_t> shape) { specs.push_back({p + name, shape, DType::BF16}); };
    add("input_layernorm.weight", {dim});
    add("post_attention_layernorm.weight", {dim});
    add("self_attn.q_proj.weight", {q_dim, dim});
    add("self_attn.k_proj.weight", {kv_dim, dim});
    add("self_attn.v_proj.weight", {kv_dim, dim});
    add("self_attn.o_proj.weight", {dim, q_dim});
    if (c.attention_bias) {
      add("self_attn.q_proj.bias", {q_dim});
      add("self_attn.k_proj.bias", {kv_dim});
      add("self_attn.v_proj.bias", {kv_dim});
    }
    if (c.attention_output_bias) add("self_attn.o_proj.bias", {dim});
    if (c.qk_norm) {
      add("self_attn.q_norm.weight", {c.head_dim});
      add("self_attn.k_norm.weight", {c.head_dim});
    }
    add("mlp.gate_proj.weight", {ff, dim});
    add("mlp.up_proj.weight", {ff, dim});
    add("mlp.down_proj.weight", {dim, ff});
    if (c.mlp_bias) {
      add("mlp.gate_proj.bias", {ff});
      add("mlp.up_proj.bias", {ff});
      add("mlp.down_proj.bias", {dim});
    }
  }
  return specs;
}

TpPlan resolve(const ModelConfig& config, int tp, const TpPlanSource& source = TpPlanSource::auto_plan()) {
  return resolve_tp_plan(config, llama_specs(config), source, tp);
}

TpPlanSource manual(const nlohmann::json& plan) { return TpPlanSource::from_json(plan.dump(), "plan.json"); }

std::string plan_error(const ModelConfig& config, int tp, const TpPlanSource& source) {
  return error_message([&] { resolve(config, tp, source); });
}

// ---------------------------------------------------------------------------------------------
// Placements

TEST(Placement, Names) {
  EXPECT_EQ(placement_name(Placement::shard(1)), "Shard(1)");
  EXPECT_EQ(placement_name(Placement::replicate()), "Replicate()");
  EXPECT_EQ(placement_name(Placement::partial()), "Partial(sum)");
}

// ---------------------------------------------------------------------------------------------
// Strategies

TEST(TpStrategy, TableIsIndexedByStrategyAndNamesRoundTrip) {
  for (int i = 0; i <= int(TpStrategy::ALL_REDUCE); ++i) {
    const TpStrategyTraits& traits = strategy_traits(TpStrategy(i));
    EXPECT_EQ(int(traits.strategy), i);
    EXPECT_EQ(parse_strategy(traits.name), TpStrategy(i)) << traits.name;
  }
}

TEST(TpStrategy, TransformersFourNamesAreAliases) {
  EXPECT_EQ(parse_strategy("colwise_rep"), TpStrategy::COLWISE_GATHER_OUTPUT);
  EXPECT_EQ(parse_strategy("rowwise_rep"), TpStrategy::ROWWISE_SPLIT_INPUT);
  EXPECT_EQ(parse_strategy("gather"), TpStrategy::ALL_REDUCE);
  EXPECT_EQ(parse_strategy("replicated_with_grad_allreduce"), TpStrategy::REPLICATE);
  EXPECT_EQ(parse_strategy("colwize"), std::nullopt);
  EXPECT_TRUE(is_unsupported_transformers_strategy("megamoe_experts"));
  EXPECT_FALSE(is_unsupported_transformers_strategy("moe_tp_experts"));  // runs on MoE models
  EXPECT_FALSE(is_unsupported_transformers_strategy("colwise"));
}

TEST(TpStrategy, RowwiseOutputsAPartialSumThatIsAllReduced) {
  EXPECT_EQ(strategy_traits(TpStrategy::ROWWISE).output, Placement::partial());
  EXPECT_EQ(strategy_traits(TpStrategy::ROWWISE).collective, TpCollective::ALL_REDUCE);
  EXPECT_EQ(strategy_traits(TpStrategy::COLWISE).collective, TpCollective::NONE);
  EXPECT_EQ(strategy_traits(TpStrategy::COLWISE_GATHER_OUTPUT).collective, TpCollective::ALL_GATHER);
  EXPECT_EQ(strategy_traits(TpStrategy::EMBEDDING_ROWWISE).collective, TpCollective::ALL_REDUCE);
  EXPECT_EQ(strategy_traits(TpStrategy::LOCAL_ROWWISE).collective, TpCollective::NONE);
}

// ---------------------------------------------------------------------------------------------
// Default plans (Transformers 5)

TEST(DefaultTpPlan, LlamaMistralQwen2ShareTransformersPlan) {
  const std::vector<std::pair<std::string, std::string>> expected = {
      {"model.layers.*.self_attn.q_proj", "colwise"}, {"model.layers.*.self_attn.k_proj", "colwise"},
      {"model.layers.*.self_attn.v_proj", "colwise"}, {"model.layers.*.self_attn.o_proj", "rowwise"},
      {"model.layers.*.mlp.gate_proj", "colwise"},    {"model.layers.*.mlp.up_proj", "colwise"},
      {"model.layers.*.mlp.down_proj", "rowwise"},    {"lm_head", "colwise_gather_output"}};
  for (const char* architecture : {"LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM"}) {
    const std::vector<TpPlanEntry> plan = default_tp_plan(make_config(base_config(architecture)));
    ASSERT_EQ(plan.size(), expected.size()) << architecture;
    for (size_t i = 0; i < plan.size(); ++i) {
      EXPECT_EQ(plan[i].pattern, expected[i].first);
      EXPECT_EQ(plan[i].strategy, expected[i].second);
    }
  }
}

TEST(DefaultTpPlan, Qwen3ReplicatesItsQkNormsAndTiedModelsSplitTheEmbedding) {
  nlohmann::json json = base_config("Qwen3ForCausalLM");
  json["tie_word_embeddings"] = true;
  const std::vector<TpPlanEntry> plan = default_tp_plan(make_config(json));
  ASSERT_EQ(plan.size(), 11u);
  EXPECT_EQ(plan[7].pattern, "model.layers.*.self_attn.q_norm");
  EXPECT_EQ(plan[7].strategy, "replicated_with_grad_allreduce");
  EXPECT_EQ(plan[8].pattern, "model.layers.*.self_attn.k_norm");
  EXPECT_EQ(plan[9].pattern, "model.embed_tokens");
  EXPECT_EQ(plan[9].strategy, "embedding_rowwise");
  EXPECT_EQ(plan[10].pattern, "lm_head");
}

// ---------------------------------------------------------------------------------------------
// Resolution: Llama-3-8B (32 query heads, 8 KV heads, head_dim 128)

TEST(ResolveTpPlan, Llama3AutoPlanSplitsByHeadsAndReplicatesTheRest) {
  const ModelConfig config = make_config(base_config("LlamaForCausalLM"));
  const TpPlan plan = resolve(config, 2);
  ASSERT_EQ(plan.tp_size(), 2);

  const TpWeight& q = plan.weight("model.layers.1.self_attn.q_proj.weight");
  EXPECT_EQ(q.strategy, TpStrategy::COLWISE);
  EXPECT_EQ(q.pattern, "model.layers.*.self_attn.q_proj");
  EXPECT_EQ(q.placement, Placement::shard(0));
  const TensorSlice& q1 = plan.slice("model.layers.1.self_attn.q_proj.weight", 1);
  EXPECT_EQ(q1.dim, 0);
  ASSERT_EQ(q1.segments.size(), 1u);
  EXPECT_EQ(q1.segments[0].offset, 2048);
  EXPECT_EQ(q1.segments[0].length, 2048);
  EXPECT_EQ(q1.local_shape, (std::vector<int64_t>{2048, 4096}));

  const TensorSlice& k1 = plan.slice("model.layers.0.self_attn.k_proj.weight", 1);
  EXPECT_EQ(k1.segments[0].offset, 512);  // KV heads 4..7
  EXPECT_EQ(k1.segments[0].length, 512);
  EXPECT_EQ(k1.segments[0].n_copies, 1);

  const TensorSlice& o1 = plan.slice("model.layers.0.self_attn.o_proj.weight", 1);
  EXPECT_EQ(o1.dim, 1);  // columns: the query heads this rank computed
  EXPECT_EQ(o1.segments[0].offset, 2048);
  EXPECT_EQ(o1.local_shape, (std::vector<int64_t>{4096, 2048}));

  const TensorSlice& down0 = plan.slice("model.layers.0.mlp.down_proj.weight", 0);
  EXPECT_EQ(down0.dim, 1);
  EXPECT_EQ(down0.local_shape, (std::vector<int64_t>{4096, 7168}));
  EXPECT_EQ(plan.slice("model.layers.0.mlp.gate_proj.weight", 1).segments[0].offset, 7168);

  const TpWeight& head = plan.weight("lm_head.weight");
  EXPECT_EQ(head.strategy, TpStrategy::COLWISE_GATHER_OUTPUT);
  EXPECT_EQ(plan.slice("lm_head.weight", 1).segments[0].offset, 64128);

  for (const char* replicated : {"model.embed_tokens.weight", "model.norm.weight", "model.layers.0.input_layernorm.weight"}) {
    const TpWeight& weight = plan.weight(replicated);
    EXPECT_FALSE(weight.in_plan()) << replicated;
    EXPECT_EQ(weight.placement, Placement::replicate());
    EXPECT_TRUE(weight.slices[1].whole());
    EXPECT_EQ(weight.slices[1].local_shape, weight.shape);
  }
}

TEST(ResolveTpPlan, TpOneGivesEveryRankTheWholeTensor) {
  const ModelConfig config = make_config(base_config("LlamaForCausalLM"));
  const TpPlan plan = resolve(config, 1);
  for (const TpWeight& weight : plan.weights()) EXPECT_EQ(weight.slices[0].local_shape, weight.shape) << weight.name;
}

// Query head h uses KV head h / (n_heads / n_kv_heads); every rank must hold the KV heads its query
// heads use, including when KV heads are replicated.
TEST(ResolveTpPlan, EveryRankHoldsTheKvHeadsItsQueryHeadsUse) {
  struct Case {
    int n_heads, n_kv, tp;
  };
  for (const Case c : {Case{32, 8, 2}, Case{32, 8, 8}, Case{32, 8, 16}, Case{32, 8, 32}, Case{28, 4, 4}, Case{28, 4, 28},
                       Case{8, 1, 8}, Case{12, 2, 4}}) {
    nlohmann::json json = base_config("LlamaForCausalLM");
    json["num_attention_heads"] = c.n_heads;
    json["num_key_value_heads"] = c.n_kv;
    json["hidden_size"] = c.n_heads * 64;
    json["intermediate_size"] = 14336;  // 2^11 * 7: divisible by every tp below
    json["vocab_size"] = 14336;
    json["num_hidden_layers"] = 1;
    const ModelConfig config = make_config(json);
    const TpPlan plan = resolve(config, c.tp);
    const int group = c.n_heads / c.n_kv;
    for (int rank = 0; rank < c.tp; ++rank) {
      const SliceSegment q = plan.slice("model.layers.0.self_attn.q_proj.weight", rank).segments[0];
      const SliceSegment k = plan.slice("model.layers.0.self_attn.k_proj.weight", rank).segments[0];
      const SliceSegment v = plan.slice("model.layers.0.self_attn.v_proj.weight", rank).segments[0];
      // Query heads split evenly; KV heads too, or each is copied to tp / n_kv consecutive ranks.
      const int n_local_heads = c.n_heads / c.tp;
      const int kv_copies = c.n_kv >= c.tp ? 1 : c.tp / c.n_kv;
      EXPECT_EQ(q.offset, rank * n_local_heads * 64);
      EXPECT_EQ(q.length, n_local_heads * 64);
      EXPECT_EQ(k.length, (c.n_kv >= c.tp ? c.n_kv / c.tp : 1) * 64);
      EXPECT_EQ(v.offset, k.offset);
      EXPECT_EQ(k.n_copies, kv_copies);
      for (int64_t head = q.offset / 64; head < (q.offset + q.length) / 64; ++head) {
        const int64_t kv_head = head / group;
        EXPECT_GE(kv_head, k.offset / 64) << c.n_heads << "/" << c.n_kv << " tp=" << c.tp << " rank " << rank;
        EXPECT_LT(kv_head, (k.offset + k.length) / 64);
      }
    }
  }
}

TEST(ResolveTpPlan, ReplicatedKvHeadsGoToConsecutiveRanks) {
  const ModelConfig config = make_config(base_config("LlamaForCausalLM"));  // 8 KV heads
  const TpPlan plan = resolve(config, 16);
  for (int rank = 0; rank < 16; ++rank) {
    const SliceSegment k = plan.slice("model.layers.0.self_attn.k_proj.weight", rank).segments[0];
    EXPECT_EQ(k.offset, (rank / 2) * 128);
    EXPECT_EQ(k.length, 128);
    EXPECT_EQ(k.n_copies, 2);
  }
  EXPECT_EQ(plan.slice("model.layers.0.self_attn.q_proj.weight", 5).segments[0].offset, 5 * 2 * 128);
}

TEST(ResolveTpPlan, ColwiseBiasesSplitWithTheirRowsAndRowwiseBiasesAreReplicated) {
  nlohmann::json qwen2 = base_config("Qwen2ForCausalLM");  // q/k/v biases
  qwen2["num_attention_heads"] = 28;
  qwen2["num_key_value_heads"] = 4;
  qwen2["hidden_size"] = 3584;
  qwen2["intermediate_size"] = 18944;
  qwen2["vocab_size"] = 152064;
  const TpPlan plan = resolve(make_config(qwen2), 4);
  const TensorSlice& k_bias = plan.slice("model.layers.0.self_attn.k_proj.bias", 3);
  EXPECT_EQ(k_bias.dim, 0);
  EXPECT_EQ(k_bias.segments[0].offset, 3 * 128);
  EXPECT_EQ(k_bias.local_shape, std::vector<int64_t>{128});
  EXPECT_EQ(plan.slice("model.layers.0.self_attn.q_proj.bias", 3).segments[0].offset, 3 * 7 * 128);

  nlohmann::json llama = base_config("LlamaForCausalLM");
  llama["attention_bias"] = true;
  llama["mlp_bias"] = true;
  const TpPlan biased = resolve(make_config(llama), 2);
  for (const char* name : {"model.layers.0.self_attn.o_proj.bias", "model.layers.0.mlp.down_proj.bias"}) {
    EXPECT_EQ(biased.weight(name).placement, Placement::replicate()) << name;
    EXPECT_TRUE(biased.slice(name, 1).whole());
  }
  EXPECT_EQ(biased.slice("model.layers.0.mlp.up_proj.bias", 1).segments[0].offset, 7168);
}

TEST(ResolveTpPlan, Qwen3QkNormsStayWhole) {
  nlohmann::json json = base_config("Qwen3ForCausalLM");
  json["head_dim"] = 128;
  json["vocab_size"] = 151936;
  json["intermediate_size"] = 12288;
  const TpPlan plan = resolve(make_config(json), 2);
  const TpWeight& q_norm = plan.weight("model.layers.0.self_attn.q_norm.weight");
  EXPECT_TRUE(q_norm.in_plan());
  EXPECT_EQ(q_norm.strategy_name, "replicated_with_grad_allreduce");
  EXPECT_TRUE(q_norm.slices[1].whole());
}

TEST(ResolveTpPlan, TiedHeadReadsTheEmbeddingAndSplitsAnUnevenVocabulary) {
  nlohmann::json json = base_config("LlamaForCausalLM");
  json["tie_word_embeddings"] = true;
  json["vocab_size"] = 715;  // as the tied test fixture: odd, so tp=2 must pad
  const TpPlan plan = resolve(make_config(json), 2);
  const TpWeight& head = plan.weight("lm_head.weight");
  EXPECT_EQ(head.source_name, "model.embed_tokens.weight");
  EXPECT_EQ(head.strategy, TpStrategy::COLWISE_GATHER_OUTPUT);
  const TpWeight& embedding = plan.weight("model.embed_tokens.weight");
  EXPECT_EQ(embedding.strategy, TpStrategy::EMBEDDING_ROWWISE);
  for (int rank = 0; rank < 2; ++rank) {
    const TensorSlice& slice = plan.slice("lm_head.weight", rank);
    EXPECT_EQ(slice.block, 358);
    EXPECT_EQ(slice.segments[0].offset, rank * 358);
    EXPECT_EQ(slice.segments[0].length, rank == 0 ? 358 : 357);
    EXPECT_EQ(plan.slice("model.embed_tokens.weight", rank).segments[0].offset, slice.segments[0].offset);
  }
}

TEST(ResolveTpPlan, PatternsMatchWithOrWithoutModelPrefixAndStarIsOneLayerNumber) {
  const ModelConfig config = make_config(base_config("LlamaForCausalLM"));
  const TpPlan plan = resolve(config, 2,
                              manual({{"layers.*.mlp.up_proj", "colwise"},
                                      {"model.layers.1.mlp.down_proj", "rowwise"},
                                      {"model.layers.*.self_attn.q_proj.weight", "colwise"}}));
  EXPECT_EQ(plan.weight("model.layers.0.mlp.up_proj.weight").strategy, TpStrategy::COLWISE);
  EXPECT_EQ(plan.weight("model.layers.1.mlp.up_proj.weight").pattern, "layers.*.mlp.up_proj");
  EXPECT_FALSE(plan.weight("model.layers.0.mlp.down_proj.weight").in_plan());
  EXPECT_EQ(plan.weight("model.layers.1.mlp.down_proj.weight").strategy, TpStrategy::ROWWISE);
  EXPECT_EQ(plan.weight("model.layers.1.self_attn.q_proj.weight").strategy, TpStrategy::COLWISE);

  // '*' replaces a layer number only, as in Transformers: it never matches a name.
  EXPECT_EQ(plan_error(config, 2, manual({{"model.layers.*.mlp.*", "colwise"}})),
            "tp plan plan.json: pattern \"model.layers.*.mlp.*\" (colwise) matches no module of this model");
}

TEST(ResolveTpPlan, PackedWeightsSplitEachComponent) {
  nlohmann::json json = base_config("LlamaForCausalLM");
  json["num_hidden_layers"] = 1;
  const ModelConfig config = make_config(json);  // q 4096, kv 1024, ff 14336
  const std::vector<WeightSpec> specs = {
      {"model.embed_tokens.weight", {128256, 4096}, DType::BF16},
      {"model.layers.0.self_attn.qkv_proj.weight", {4096 + 2 * 1024, 4096}, DType::BF16},
      {"model.layers.0.mlp.gate_up_proj.weight", {2 * 14336, 4096}, DType::BF16},
      {"model.layers.0.mlp.w13.weight", {4096, 2 * 14336}, DType::BF16}};
  const TpPlan plan = resolve_tp_plan(config, specs,
                                      manual({{"model.layers.*.self_attn.qkv_proj", "packed_colwise"},
                                              {"model.layers.*.mlp.gate_up_proj", "packed_colwise"},
                                              {"model.layers.*.mlp.w13", "packed_rowwise"}}),
                                      4);
  const TensorSlice& qkv = plan.slice("model.layers.0.self_attn.qkv_proj.weight", 1);
  ASSERT_EQ(qkv.segments.size(), 3u);
  EXPECT_EQ(qkv.segments[0].offset, 1024);             // q rows of heads 8..15
  EXPECT_EQ(qkv.segments[1].offset, 4096 + 256);       // k rows of KV heads 2..3
  EXPECT_EQ(qkv.segments[2].offset, 4096 + 1024 + 256);  // v rows
  EXPECT_EQ(qkv.segments[2].length, 256);
  EXPECT_EQ(qkv.local_shape, (std::vector<int64_t>{1024 + 512, 4096}));

  const TensorSlice& gate_up = plan.slice("model.layers.0.mlp.gate_up_proj.weight", 3);
  ASSERT_EQ(gate_up.segments.size(), 2u);
  EXPECT_EQ(gate_up.segments[0].offset, 3 * 3584);
  EXPECT_EQ(gate_up.segments[1].offset, 14336 + 3 * 3584);

  const TensorSlice& w13 = plan.slice("model.layers.0.mlp.w13.weight", 2);
  EXPECT_EQ(w13.dim, 1);
  EXPECT_EQ(w13.segments[1].offset, 14336 + 2 * 3584);
  EXPECT_EQ(w13.local_shape, (std::vector<int64_t>{4096, 2 * 3584}));
}

TEST(ResolveTpPlan, AllReduceModulesCompleteLocalRowwiseChildren) {
  const ModelConfig config = make_config(base_config("MistralForCausalLM"));
  const TpPlan plan = resolve(config, 2,
                              manual({{"model.layers.*.mlp", "all_reduce"},
                                      {"model.layers.*.mlp.gate_proj", "local_colwise"},
                                      {"model.layers.*.mlp.up_proj", "local_colwise"},
                                      {"model.layers.*.mlp.down_proj", "local_rowwise"}}));
  ASSERT_EQ(plan.modules().size(), 2u);
  EXPECT_EQ(plan.modules()[0].name, "model.layers.0.mlp");
  EXPECT_EQ(plan.weight("model.layers.0.mlp.down_proj.weight").placement, Placement::shard(1));
  const TpSummary summary = summarize_tp_plan(plan);
  EXPECT_EQ(summary.all_reduces_per_forward, 2);  // one per mlp, none for the local_rowwise children
}

// ---------------------------------------------------------------------------------------------
// Validation errors

TEST(ResolveTpPlanErrors, KvHeadsThatNeitherDivideNorReplicate) {
  nlohmann::json json = base_config("LlamaForCausalLM");
  json["num_attention_heads"] = 6;
  json["num_key_value_heads"] = 2;
  json["hidden_size"] = 384;
  json["intermediate_size"] = 960;
  json["vocab_size"] = 960;
  EXPECT_EQ(plan_error(make_config(json), 3, TpPlanSource::auto_plan()),
            "tp plan: model.layers.0.self_attn.k_proj (colwise) splits 2 KV heads over tp=3: not divisible (KV heads are "
            "replicated only when tp is a multiple of 2)");
}

TEST(ResolveTpPlanErrors, QueryHeadsRowsAndColumnsThatDoNotDivide) {
  const ModelConfig config = make_config(base_config("LlamaForCausalLM"));
  EXPECT_EQ(plan_error(config, 3, TpPlanSource::auto_plan()),
            "tp plan: model.layers.0.self_attn.q_proj (colwise) splits 32 query heads over tp=3: not divisible");
  EXPECT_EQ(plan_error(config, 3, manual({{"model.layers.*.mlp.up_proj", "colwise"}})),
            "tp plan plan.json: model.layers.0.mlp.up_proj (colwise) splits 14336 rows over tp=3: not divisible");
  EXPECT_EQ(plan_error(config, 3, manual({{"model.layers.*.mlp.down_proj", "rowwise"}})),
            "tp plan plan.json: model.layers.0.mlp.down_proj (rowwise) splits 14336 columns over tp=3: not divisible");
  // Only gathered or summed outputs may be padded: a plain colwise head would feed ragged shards on.
  EXPECT_EQ(plan_error(config, 5, manual({{"lm_head", "colwise"}})),
            "tp plan plan.json: lm_head (colwise) splits 128256 vocabulary rows over tp=5: not divisible");
}

TEST(ResolveTpPlanErrors, UnknownAndUnsupportedStrategies) {
  const ModelConfig config = make_config(base_config("LlamaForCausalLM"));
  const std::string unknown = plan_error(config, 2, manual({{"model.layers.*.mlp.up_proj", "colwize"}}));
  EXPECT_CONTAINS(unknown, "tp plan plan.json: \"model.layers.*.mlp.up_proj\": unknown strategy \"colwize\" (known: colwise, ");
  EXPECT_CONTAINS(unknown, "colwise_gather_output");
  EXPECT_EQ(plan_error(config, 2, manual({{"model.layers.*.mlp.experts", "moe_tp_experts"}})),
            "tp plan plan.json: \"model.layers.*.mlp.experts\": strategy \"moe_tp_experts\" is for mixture-of-experts or "
            "MLA layers, which LlamaForCausalLM does not have");
  EXPECT_EQ(plan_error(config, 2, manual({{"model.layers.*.mlp.experts", "megamoe_experts"}})),
            "tp plan plan.json: \"model.layers.*.mlp.experts\": strategy \"megamoe_experts\" is for mixture-of-experts or "
            "MLA layers, which LlamaForCausalLM does not have");
}

TEST(ResolveTpPlanErrors, PatternsMatchingNothingOrOnlyAParentModule) {
  const ModelConfig config = make_config(base_config("LlamaForCausalLM"));
  EXPECT_EQ(plan_error(config, 2, manual({{"model.layers.*.mlp.upproj", "colwise"}})),
            "tp plan plan.json: pattern \"model.layers.*.mlp.upproj\" (colwise) matches no module of this model");
  EXPECT_EQ(plan_error(config, 2, manual({{"model.layers.*.mlp", "colwise"}})),
            "tp plan plan.json: pattern \"model.layers.*.mlp\" (colwise) matches model.layers.0.mlp, which owns no "
            "weights; colwise applies to the weights of a module");
  EXPECT_EQ(plan_error(config, 2, manual({{"model.layers.*.mlp.upp", "all_reduce"}})),
            "tp plan plan.json: pattern \"model.layers.*.mlp.upp\" (all_reduce) matches no module of this model");
  EXPECT_CONTAINS(plan_error(config, 2, manual({{"lm_head", "gather"}})),
                  "\"lm_head\" (gather) matches lm_head, which owns weights");
}

TEST(ResolveTpPlanErrors, ModuleMatchedByTwoPatterns) {
  const ModelConfig config = make_config(base_config("LlamaForCausalLM"));
  EXPECT_EQ(plan_error(config, 2, manual({{"model.layers.*.mlp.up_proj", "colwise"}, {"layers.*.mlp.up_proj", "rowwise"}})),
            "tp plan plan.json: model.layers.0.mlp.up_proj.weight is matched by two patterns: \"layers.*.mlp.up_proj\" "
            "(rowwise) and \"model.layers.*.mlp.up_proj\" (colwise)");
  EXPECT_CONTAINS(
      plan_error(config, 2, manual({{"model.layers.*.mlp.up_proj", "colwise"}, {"model.layers.0.mlp.up_proj.weight", "replicate"}})),
      "model.layers.0.mlp.up_proj.weight is matched by two patterns");
}

TEST(ResolveTpPlanErrors, SplitsThatBreakPerHeadOrFusedWeights) {
  nlohmann::json json = base_config("Qwen3ForCausalLM");
  json["head_dim"] = 128;
  const ModelConfig qwen3 = make_config(json);
  EXPECT_EQ(plan_error(qwen3, 2, manual({{"model.layers.*.self_attn.k_norm", "colwise"}})),
            "tp plan plan.json: model.layers.0.self_attn.k_norm (colwise) is applied per head, so it can only be replicated");

  const ModelConfig llama = make_config(base_config("LlamaForCausalLM"));
  const std::vector<WeightSpec> fused = {{"model.layers.0.self_attn.qkv_proj.weight", {6144, 4096}, DType::BF16}};
  EXPECT_EQ(error_message([&] {
              resolve_tp_plan(llama, fused, manual({{"model.layers.*.self_attn.qkv_proj", "colwise"}}), 2);
            }),
            "tp plan plan.json: model.layers.0.self_attn.qkv_proj (colwise) is a fused weight: use packed_colwise or "
            "packed_rowwise so each component is split separately");
  EXPECT_EQ(plan_error(llama, 2, manual({{"model.layers.*.mlp.up_proj", "packed_colwise"}})),
            "tp plan plan.json: model.layers.0.mlp.up_proj (packed_colwise) is not a fused weight; use colwise or rowwise");
}

TEST(ResolveTpPlanErrors, ShapesThatDisagreeWithTheConfig) {
  const ModelConfig config = make_config(base_config("LlamaForCausalLM"));
  std::vector<WeightSpec> specs = llama_specs(config);
  for (WeightSpec& spec : specs) {
    if (spec.name == "model.layers.0.self_attn.k_proj.weight") spec.shape = {2048, 4096};
  }
  EXPECT_EQ(error_message([&] { resolve_tp_plan(config, specs, TpPlanSource::auto_plan(), 2); }),
            "tp plan: model.layers.0.self_attn.k_proj.weight has shape [2048, 4096], but config.json implies 1024 along "
            "dimension 0");
}

TEST(ResolveTpPlanErrors, BadTpSizeAndBadPlanFiles) {
  const ModelConfig config = make_config(base_config("LlamaForCausalLM"));
  EXPECT_EQ(plan_error(config, 0, TpPlanSource::auto_plan()), "tp plan: tp size 0 must be at least 1");
  EXPECT_CONTAINS(error_message([] { TpPlanSource::from_json("[1, 2]", "plan.json"); }), "plan.json");
  EXPECT_EQ(error_message([] { TpPlanSource::from_json(R"({"lm_head": 3})", "plan.json"); }),
            "plan.json: tp plan entry \"lm_head\" must map to a strategy name, got integer 3");
  EXPECT_EQ(error_message([] { TpPlanSource::from_json("{}", "plan.json"); }), "plan.json: tp plan is empty");
  EXPECT_CONTAINS(error_message([] { TpPlanSource::from_json(R"({"lm_head": "colwise", "lm_head": "rowwise"})", "plan.json"); }),
                  "lm_head");
  EXPECT_CONTAINS(error_message([] { TpPlanSource::from_argument("/nonexistent/plan.json"); }), "/nonexistent/plan.json");
  EXPECT_TRUE(TpPlanSource::from_argument("auto").automatic);
}

// ---------------------------------------------------------------------------------------------
// Summary

TEST(TpPlanSummary, Llama3BytesPerRankAndCollectives) {
  nlohmann::json json = base_config("LlamaForCausalLM");
  json["num_hidden_layers"] = 32;
  const TpPlan plan = resolve(make_config(json), 2);
  const TpSummary summary = summarize_tp_plan(plan);

  const int64_t bf16 = 2;
  const int64_t embedding = int64_t(128256) * 4096 * bf16;
  const int64_t layer = (4096LL * 4096 * 2 + 1024LL * 4096 * 2 + 14336LL * 4096 * 3) * bf16;
  const int64_t norms = (4096LL + 32 * 2 * 4096) * bf16;
  EXPECT_EQ(summary.model_bytes, 2 * embedding + 32 * layer + norms);
  EXPECT_EQ(summary.replicated_bytes, embedding + norms);
  ASSERT_EQ(summary.bytes_per_rank.size(), 2u);
  EXPECT_EQ(summary.bytes_per_rank[0], embedding + norms + embedding / 2 + 32 * layer / 2);
  EXPECT_EQ(summary.bytes_per_rank[1], summary.bytes_per_rank[0]);
  EXPECT_EQ(summary.all_reduces_per_forward, 64);  // o_proj and down_proj of 32 layers
  EXPECT_EQ(summary.all_gathers_per_forward, 1);   // lm_head

  const auto row = std::find_if(summary.rows.begin(), summary.rows.end(),
                                [](const TpSummaryRow& r) { return r.kind == "model.layers.*.self_attn.k_proj.weight"; });
  ASSERT_NE(row, summary.rows.end());
  EXPECT_EQ(row->n_weights, 32);
  EXPECT_EQ(row->rank0_shape, (std::vector<int64_t>{512, 4096}));
  const std::string text = format_tp_summary(summary);
  EXPECT_CONTAINS(text, "model.layers.*.self_attn.k_proj.weight");
  EXPECT_CONTAINS(text, "replicate (not in plan)");
  EXPECT_CONTAINS(text, "all-reduce");
}

TEST(TpPlanSummary, TiedHeadIsNotCountedTwiceAndReplicatedKvHeadsAreNoted) {
  nlohmann::json json = base_config("LlamaForCausalLM");
  json["tie_word_embeddings"] = true;
  json["num_hidden_layers"] = 1;
  const TpPlan plan = resolve(make_config(json), 16);
  const TpSummary summary = summarize_tp_plan(plan);
  const int64_t embedding_share = int64_t(128256) / 16 * 4096 * 2;
  const int64_t layer_share = (4096LL * 4096 * 2 + 14336LL * 4096 * 3) * 2 / 16 + 128LL * 4096 * 2 * 2;
  const int64_t norms = 4096LL * 3 * 2;
  EXPECT_EQ(summary.bytes_per_rank[7], embedding_share + layer_share + norms);
  EXPECT_CONTAINS(format_tp_summary(summary), "KV heads replicated on 2 ranks");
  EXPECT_CONTAINS(format_tp_summary(summary), "reads model.embed_tokens.weight");
}

}  // namespace
}  // namespace shardlm
