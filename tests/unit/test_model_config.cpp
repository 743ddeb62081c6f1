// Tests for config.json parsing: the per-family defaults for absent keys, and one test per
// validation error, each checking the message names the file and problem (the published configs
// are test_model_config_published.cpp's).
#include <gtest/gtest.h>

#include <stdlib.h>

#include <fstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "error_message.h"
#include "core/error.h"
#include "io/model_config.h"

namespace shardlm {
namespace {

namespace fs = std::filesystem;

// Parsing `text` as "config.json" must fail with a message starting with the file name and
// containing `expected`.
void expect_config_error(std::string_view text, std::string_view expected) {
  const std::string message = error_message([&] { ModelConfig::parse(text, "config.json"); });
  EXPECT_EQ(message.rfind("config.json: ", 0), 0u) << message;
  EXPECT_NE(message.find(expected), std::string::npos) << "missing \"" << expected << "\" in: " << message;
}

// ---------------------------------------------------------------------------------------------
// Defaults of the HF config classes when keys are absent

// The five required sizes for `architecture`, with `overrides` (a JSON object) set on top. Keys
// set to null stay null, which is how the null-vs-absent rules are tested.
std::string minimal_config(std::string_view architecture, std::string_view overrides = "{}") {
  nlohmann::json config = {{"architectures", {architecture}}, {"hidden_size", 2048}, {"intermediate_size", 5632},
                           {"num_hidden_layers", 4},          {"num_attention_heads", 32}, {"vocab_size", 1000}};
  config.update(nlohmann::json::parse(overrides));
  return config.dump();
}

TEST(ModelConfigDefaults, Llama) {
  const ModelConfig config = ModelConfig::parse(minimal_config("LlamaForCausalLM"), "config.json");
  EXPECT_EQ(config.num_key_value_heads, 32);
  EXPECT_EQ(config.head_dim, 64);
  EXPECT_EQ(config.max_position_embeddings, 2048);
  EXPECT_FLOAT_EQ(config.rms_norm_eps, 1e-6f);
  EXPECT_FLOAT_EQ(config.rope_theta, 10000.0f);
  EXPECT_EQ(config.rope_scaling.type, RopeType::DEFAULT);
  EXPECT_EQ(config.bos_token_id, 1);
  EXPECT_EQ(config.eos_token_ids, std::vector<int>{2});
  EXPECT_FALSE(config.tie_word_embeddings);
  EXPECT_FALSE(config.attention_bias);
  EXPECT_FALSE(config.mlp_bias);
  EXPECT_FALSE(config.sliding_window.has_value());
  EXPECT_FALSE(config.torch_dtype.has_value());
  EXPECT_EQ(config.hidden_act, "silu");
}

TEST(ModelConfigDefaults, Mistral) {
  const ModelConfig config = ModelConfig::parse(minimal_config("MistralForCausalLM"), "config.json");
  EXPECT_EQ(config.num_key_value_heads, 8);
  EXPECT_EQ(config.head_dim, 64);
  EXPECT_EQ(config.max_position_embeddings, 131072);
  EXPECT_EQ(config.sliding_window, 4096);
  EXPECT_EQ(config.bos_token_id, 1);
  EXPECT_EQ(config.eos_token_ids, std::vector<int>{2});
  EXPECT_FLOAT_EQ(config.rope_theta, 10000.0f);
}

TEST(ModelConfigDefaults, Qwen2) {
  const ModelConfig config = ModelConfig::parse(minimal_config("Qwen2ForCausalLM"), "config.json");
  EXPECT_EQ(config.num_key_value_heads, 32);
  EXPECT_EQ(config.head_dim, 64);
  EXPECT_EQ(config.max_position_embeddings, 32768);
  EXPECT_FALSE(config.sliding_window.has_value());
  EXPECT_FALSE(config.bos_token_id.has_value());
  EXPECT_TRUE(config.eos_token_ids.empty());
  EXPECT_TRUE(config.attention_bias);
  EXPECT_FLOAT_EQ(config.rope_theta, 10000.0f);
  EXPECT_FLOAT_EQ(config.rms_norm_eps, 1e-6f);
}

TEST(ModelConfigDefaults, Qwen3) {
  const ModelConfig config = ModelConfig::parse(minimal_config("Qwen3ForCausalLM"), "config.json");
  EXPECT_EQ(config.num_key_value_heads, 32);
  EXPECT_EQ(config.head_dim, 128);
  EXPECT_EQ(config.max_position_embeddings, 32768);
  EXPECT_FALSE(config.attention_bias);
  EXPECT_TRUE(config.qk_norm);
  EXPECT_FALSE(config.bos_token_id.has_value());
}

TEST(ModelConfigDefaults, NullKeyValueHeadsMeansAttentionHeads) {
  const ModelConfig config =
      ModelConfig::parse(minimal_config("Qwen2ForCausalLM", R"({"num_attention_heads": 16, "num_key_value_heads": null})"), "x");
  EXPECT_EQ(config.num_key_value_heads, 16);
}

TEST(ModelConfigDefaults, NullTokenIdsOverrideTheClassDefaults) {
  const ModelConfig config =
      ModelConfig::parse(minimal_config("LlamaForCausalLM", R"({"bos_token_id": null, "eos_token_id": null})"), "x");
  EXPECT_FALSE(config.bos_token_id.has_value());
  EXPECT_TRUE(config.eos_token_ids.empty());
}

// ---------------------------------------------------------------------------------------------
// RoPE variants and precedence

TEST(ModelConfigRope, RopeScalingWinsOverRopeParameters) {
  const ModelConfig config = ModelConfig::parse(minimal_config("LlamaForCausalLM", R"({
    "rope_scaling": {"rope_type": "linear", "factor": 2.0},
    "rope_parameters": {"rope_type": "yarn", "factor": 4.0, "rope_theta": 1234.0}})"), "x");
  EXPECT_EQ(config.rope_scaling.type, RopeType::LINEAR);
  EXPECT_FLOAT_EQ(config.rope_scaling.factor, 2.0f);
  EXPECT_FLOAT_EQ(config.rope_theta, 10000.0f);
}

TEST(ModelConfigRope, EmptyRopeScalingFallsBackToRopeParameters) {
  const ModelConfig config = ModelConfig::parse(minimal_config("LlamaForCausalLM", R"({
    "rope_scaling": {}, "rope_parameters": {"rope_type": "linear", "factor": 3, "rope_theta": 20000}})"), "x");
  EXPECT_EQ(config.rope_scaling.type, RopeType::LINEAR);
  EXPECT_FLOAT_EQ(config.rope_scaling.factor, 3.0f);
  EXPECT_FLOAT_EQ(config.rope_theta, 20000.0f);
}

TEST(ModelConfigRope, ThetaInsideRopeParametersWinsOverTopLevel) {
  const ModelConfig config = ModelConfig::parse(
      minimal_config("Qwen3ForCausalLM", R"({"rope_theta": 5.0, "rope_parameters": {"rope_type": "default", "rope_theta": 1000000}})"),
      "x");
  EXPECT_FLOAT_EQ(config.rope_theta, 1e6f);
  EXPECT_EQ(config.rope_scaling.type, RopeType::DEFAULT);
}

TEST(ModelConfigRope, RopeTypeWinsOverType) {
  const ModelConfig config = ModelConfig::parse(
      minimal_config("LlamaForCausalLM", R"({"rope_scaling": {"type": "dynamic", "rope_type": "linear", "factor": 2}})"), "x");
  EXPECT_EQ(config.rope_scaling.type, RopeType::LINEAR);
}

TEST(ModelConfigRope, YarnWithEveryParameter) {
  const ModelConfig config = ModelConfig::parse(minimal_config("Qwen2ForCausalLM", R"({"max_position_embeddings": 131072,
    "rope_parameters": {"rope_type": "yarn", "factor": 4, "original_max_position_embeddings": 32768, "beta_fast": 16,
                        "beta_slow": 2, "attention_factor": 1.25, "mscale": 0.707, "mscale_all_dim": 1.0, "truncate": false,
                        "rope_theta": 1000000.0}})"), "x");
  const RopeScaling& rope = config.rope_scaling;
  EXPECT_EQ(rope.type, RopeType::YARN);
  EXPECT_FLOAT_EQ(rope.factor, 4.0f);
  EXPECT_EQ(rope.original_max_position_embeddings, 32768);
  EXPECT_FLOAT_EQ(rope.beta_fast, 16.0f);
  EXPECT_FLOAT_EQ(rope.beta_slow, 2.0f);
  EXPECT_EQ(rope.attention_factor, 1.25f);
  EXPECT_EQ(rope.mscale, 0.707f);
  EXPECT_EQ(rope.mscale_all_dim, 1.0f);
  EXPECT_FALSE(rope.truncate);
}

TEST(ModelConfigRope, YarnZeroBetasMeanDefaultsAndOriginalLengthFallsBack) {
  const ModelConfig config = ModelConfig::parse(
      minimal_config("Qwen2ForCausalLM", R"({"max_position_embeddings": 8192,
        "rope_scaling": {"type": "yarn", "factor": 2.0, "beta_fast": 0, "beta_slow": null}})"), "x");
  EXPECT_FLOAT_EQ(config.rope_scaling.beta_fast, 32.0f);
  EXPECT_FLOAT_EQ(config.rope_scaling.beta_slow, 1.0f);
  EXPECT_EQ(config.rope_scaling.original_max_position_embeddings, 8192);
}

TEST(ModelConfigRope, TopLevelOriginalMaxPositionEmbeddingsWins) {
  const ModelConfig config = ModelConfig::parse(minimal_config("LlamaForCausalLM", R"({"original_max_position_embeddings": 4096,
    "rope_scaling": {"rope_type": "llama3", "factor": 8, "low_freq_factor": 1, "high_freq_factor": 4,
                     "original_max_position_embeddings": 8192}})"), "x");
  EXPECT_EQ(config.rope_scaling.original_max_position_embeddings, 4096);
}

TEST(ModelConfigRope, PartialRotaryFactorOfOneIsAccepted) {
  const ModelConfig config = ModelConfig::parse(minimal_config("LlamaForCausalLM", R"({"partial_rotary_factor": 1.0})"), "x");
  EXPECT_EQ(config.rope_scaling.type, RopeType::DEFAULT);
}

// ---------------------------------------------------------------------------------------------
// Biases and sliding windows per family

TEST(ModelConfig, LlamaBiasFlags) {
  const ModelConfig config =
      ModelConfig::parse(minimal_config("LlamaForCausalLM", R"({"attention_bias": true, "mlp_bias": true})"), "x");
  EXPECT_TRUE(config.attention_bias);
  EXPECT_TRUE(config.attention_output_bias);
  EXPECT_TRUE(config.mlp_bias);
}

TEST(ModelConfig, MistralIgnoresBiasFlagsLikeTransformers) {
  const ModelConfig config =
      ModelConfig::parse(minimal_config("MistralForCausalLM", R"({"attention_bias": true, "mlp_bias": true})"), "x");
  EXPECT_FALSE(config.attention_bias);
  EXPECT_FALSE(config.attention_output_bias);
  EXPECT_FALSE(config.mlp_bias);
}

TEST(ModelConfig, Qwen3AttentionBiasCoversOutputProjection) {
  const ModelConfig config = ModelConfig::parse(minimal_config("Qwen3ForCausalLM", R"({"attention_bias": true})"), "x");
  EXPECT_TRUE(config.attention_bias);
  EXPECT_TRUE(config.attention_output_bias);
}

TEST(ModelConfig, Qwen2SlidingWindowOnEveryLayer) {
  const ModelConfig by_max_window_layers = ModelConfig::parse(
      minimal_config("Qwen2ForCausalLM", R"({"use_sliding_window": true, "sliding_window": 1024, "max_window_layers": 0})"), "x");
  EXPECT_EQ(by_max_window_layers.sliding_window, 1024);
  const ModelConfig by_layer_types = ModelConfig::parse(minimal_config("Qwen3ForCausalLM", R"({"use_sliding_window": true,
    "layer_types": ["sliding_attention", "sliding_attention", "sliding_attention", "sliding_attention"]})"), "x");
  EXPECT_EQ(by_layer_types.sliding_window, 4096);
}

TEST(ModelConfig, Qwen2SlidingWindowOnNoLayer) {
  // The default max_window_layers (28) exceeds the 4 layers, so no layer slides.
  const ModelConfig config =
      ModelConfig::parse(minimal_config("Qwen2ForCausalLM", R"({"use_sliding_window": true, "sliding_window": 1024})"), "x");
  EXPECT_FALSE(config.sliding_window.has_value());
}

TEST(ModelConfig, FromDirReadsConfigJson) {
  std::string pattern = (fs::temp_directory_path() / "shardlm_config_XXXXXX").string();
  ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
  const fs::path dir = pattern;
  const std::string missing = error_message([&] { ModelConfig::from_dir(dir); });
  std::ofstream(dir / "config.json") << minimal_config("Qwen3ForCausalLM");
  const ModelConfig config = ModelConfig::from_dir(dir);
  std::ofstream(dir / "config.json") << "{";
  const std::string malformed = error_message([&] { ModelConfig::from_dir(dir); });
  fs::remove_all(dir);

  EXPECT_EQ(config.arch, ModelArch::QWEN3);
  EXPECT_NE(missing.find((dir / "config.json").string() + ": cannot open: No such file or directory"), std::string::npos) << missing;
  EXPECT_NE(malformed.find((dir / "config.json").string() + ": config is not valid JSON"), std::string::npos) << malformed;
}

// ---------------------------------------------------------------------------------------------
// Mixture-of-experts keys

TEST(ModelConfigMoe, MixtralDefaultsAndItsExpertSize) {
  const ModelConfig config =
      ModelConfig::parse(minimal_config("MixtralForCausalLM", R"({"num_local_experts": 8})"), "config.json");
  EXPECT_EQ(config.arch, ModelArch::MIXTRAL);
  EXPECT_EQ(config.moe.num_experts, 8);
  EXPECT_EQ(config.moe.num_experts_per_tok, 2);
  EXPECT_EQ(config.moe.expert_intermediate_size, 5632);  // Mixtral's experts are intermediate_size wide
  EXPECT_TRUE(config.moe.norm_topk_prob);
  EXPECT_EQ(config.num_key_value_heads, 8);
  EXPECT_FLOAT_EQ(config.rms_norm_eps, 1e-5f);
  EXPECT_FLOAT_EQ(config.rope_theta, 1e6f);
  EXPECT_FALSE(config.sliding_window.has_value());  // MixtralConfig's default, unlike Mistral's 4096
  EXPECT_FALSE(config.attention_bias);
  for (int layer = 0; layer < config.num_hidden_layers; ++layer) EXPECT_TRUE(config.is_sparse_layer(layer));
}

TEST(ModelConfigMoe, QwenKeysUnderEitherSpelling) {
  const ModelConfig qwen2 = ModelConfig::parse(
      minimal_config("Qwen2MoeForCausalLM", R"({"num_experts": 60, "moe_intermediate_size": 1408,
                                               "shared_expert_intermediate_size": 5632})"),
      "config.json");
  EXPECT_EQ(qwen2.moe.num_experts, 60);
  EXPECT_EQ(qwen2.moe.num_experts_per_tok, 4);
  EXPECT_EQ(qwen2.moe.expert_intermediate_size, 1408);
  EXPECT_EQ(qwen2.moe.shared_expert_intermediate_size, 5632);
  EXPECT_FALSE(qwen2.moe.norm_topk_prob);
  EXPECT_TRUE(qwen2.attention_bias);  // qkv_bias defaults to true
  EXPECT_FALSE(qwen2.attention_output_bias);
  const ModelConfig qwen3 = ModelConfig::parse(
      minimal_config("Qwen3MoeForCausalLM", R"({"num_local_experts": 128, "moe_intermediate_size": 768,
                                               "norm_topk_prob": true})"),
      "config.json");
  EXPECT_EQ(qwen3.moe.num_experts, 128);  // Transformers may save num_experts as num_local_experts
  EXPECT_EQ(qwen3.moe.num_experts_per_tok, 8);
  EXPECT_TRUE(qwen3.moe.norm_topk_prob);
  EXPECT_TRUE(qwen3.qk_norm);
  EXPECT_EQ(qwen3.moe.shared_expert_intermediate_size, 0);
  EXPECT_EQ(qwen3.num_key_value_heads, 4);
}

TEST(ModelConfigMoe, SparseLayersFollowTheStepAndTheDenseList) {
  const ModelConfig config = ModelConfig::parse(
      minimal_config("Qwen3MoeForCausalLM", R"({"num_experts": 8, "moe_intermediate_size": 64,
                                               "num_hidden_layers": 6, "decoder_sparse_step": 2,
                                               "mlp_only_layers": [3]})"),
      "config.json");
  // (layer + 1) % 2 == 0 makes layers 1, 3 and 5 sparse; mlp_only_layers takes 3 back.
  const std::vector<bool> sparse = {false, true, false, false, false, true};
  for (int layer = 0; layer < 6; ++layer) EXPECT_EQ(config.is_sparse_layer(layer), sparse[size_t(layer)]) << layer;
  const ModelConfig dense = ModelConfig::parse(minimal_config("Qwen3ForCausalLM"), "config.json");
  EXPECT_FALSE(dense.moe.present());
  EXPECT_FALSE(dense.is_sparse_layer(0));
}

TEST(ModelConfigMoe, Errors) {
  expect_config_error(minimal_config("MixtralForCausalLM"), "missing required key \"num_local_experts\" for MixtralForCausalLM");
  expect_config_error(minimal_config("Qwen3MoeForCausalLM", R"({"num_experts": 8})"),
                      "missing required key \"moe_intermediate_size\"");
  expect_config_error(minimal_config("Qwen2MoeForCausalLM", R"({"num_experts": 8, "moe_intermediate_size": 64})"),
                      "missing required key \"shared_expert_intermediate_size\"");
  expect_config_error(minimal_config("MixtralForCausalLM", R"({"num_local_experts": 4, "num_experts_per_tok": 5})"),
                      "\"num_experts_per_tok\" is 5, more than the 4 experts");
  expect_config_error(minimal_config("MixtralForCausalLM", R"({"num_local_experts": 0})"),
                      "\"num_local_experts\" must be positive, got 0");
  expect_config_error(minimal_config("Qwen3MoeForCausalLM", R"({"num_experts": 8, "moe_intermediate_size": 64,
                                                               "mlp_only_layers": [1, 4]})"),
                      "\"mlp_only_layers\" must hold layer indices below num_hidden_layers (4), got integer 4");
  expect_config_error(minimal_config("Qwen3MoeForCausalLM", R"({"num_experts": 8, "moe_intermediate_size": 64,
                                                               "mlp_only_layers": "1"})"),
                      "\"mlp_only_layers\" must be a list of layer indices, got string");
  expect_config_error(minimal_config("Qwen3MoeForCausalLM", R"({"num_experts": 8, "moe_intermediate_size": 64,
                                                               "decoder_sparse_step": 0})"),
                      "\"decoder_sparse_step\" must be positive, got 0");
}

// ---------------------------------------------------------------------------------------------
// Errors

TEST(ModelConfigErrors, MalformedJson) { expect_config_error(R"({"architectures": ["LlamaForCausalLM"],)", "config is not valid JSON"); }

TEST(ModelConfigErrors, NotAnObject) { expect_config_error("[]", "config must be a JSON object, got array"); }

TEST(ModelConfigErrors, DuplicateKey) {
  expect_config_error(R"({"architectures": ["LlamaForCausalLM"], "hidden_size": 2048, "hidden_size": 4096})",
                      "config has the key \"hidden_size\" more than once");
}

TEST(ModelConfigErrors, MissingArchitectures) {
  expect_config_error(R"({"hidden_size": 4096})", "missing required key \"architectures\"");
}

TEST(ModelConfigErrors, ArchitecturesNotAList) {
  expect_config_error(R"({"architectures": "LlamaForCausalLM"})",
                      "\"architectures\" must be a non-empty list of class names, got string \"LlamaForCausalLM\"");
  expect_config_error(R"({"architectures": []})", "\"architectures\" must be a non-empty list of class names, got array");
}

TEST(ModelConfigErrors, UnknownArchitecture) {
  expect_config_error(minimal_config("GPT2LMHeadModel"),
                      "unknown architecture \"GPT2LMHeadModel\", supported: LlamaForCausalLM, MistralForCausalLM, "
                      "Qwen2ForCausalLM, Qwen3ForCausalLM, MixtralForCausalLM, Qwen2MoeForCausalLM, "
                      "Qwen3MoeForCausalLM");
}

TEST(ModelConfigErrors, MissingRequiredKeys) {
  for (const char* key : {"hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "vocab_size"}) {
    nlohmann::json config = nlohmann::json::parse(minimal_config("LlamaForCausalLM"));
    config.erase(key);
    SCOPED_TRACE(key);
    expect_config_error(config.dump(), fmt::format("missing required key \"{}\"", key));
  }
}

TEST(ModelConfigErrors, NonPositiveSizes) {
  const std::pair<const char*, const char*> cases[] = {
      {R"({"architectures": ["LlamaForCausalLM"], "hidden_size": 0, "intermediate_size": 1, "num_hidden_layers": 1,
           "num_attention_heads": 1, "vocab_size": 1})",
       "\"hidden_size\" must be positive, got 0"},
      {R"({"architectures": ["LlamaForCausalLM"], "hidden_size": 64, "intermediate_size": 1, "num_hidden_layers": -1,
           "num_attention_heads": 1, "vocab_size": 1})",
       "\"num_hidden_layers\" must be positive, got -1"},
  };
  for (const auto& [text, expected] : cases) expect_config_error(text, expected);
  expect_config_error(minimal_config("LlamaForCausalLM", R"({"num_key_value_heads": 0})"), "\"num_key_value_heads\" must be positive, got 0");
  expect_config_error(minimal_config("LlamaForCausalLM", R"({"head_dim": -64})"), "\"head_dim\" must be positive, got -64");
  expect_config_error(minimal_config("LlamaForCausalLM", R"({"max_position_embeddings": 0})"),
                      "\"max_position_embeddings\" must be positive, got 0");
  expect_config_error(minimal_config("MistralForCausalLM", R"({"sliding_window": 0})"), "\"sliding_window\" must be positive, got 0");
  expect_config_error(minimal_config("LlamaForCausalLM", R"({"rms_norm_eps": 0})"), "\"rms_norm_eps\" must be positive, got 0");
  expect_config_error(minimal_config("LlamaForCausalLM", R"({"rope_theta": -1})"), "\"rope_theta\" must be positive, got -1");
}

TEST(ModelConfigErrors, WrongTypes) {
  expect_config_error(R"({"architectures": ["LlamaForCausalLM"], "hidden_size": "4096"})",
                      "\"hidden_size\" must be an integer, got string \"4096\"");
  expect_config_error(R"({"architectures": ["LlamaForCausalLM"], "hidden_size": 4096.0})",
                      "\"hidden_size\" must be an integer, got number 4096");
  expect_config_error(R"({"architectures": ["LlamaForCausalLM"], "hidden_size": 10000000000})",
                      "\"hidden_size\" is out of range: integer 10000000000");
  expect_config_error(minimal_config("LlamaForCausalLM", R"({"tie_word_embeddings": "false"})"),
                      "\"tie_word_embeddings\" must be true or false, got string \"false\"");
  expect_config_error(minimal_config("LlamaForCausalLM", R"({"rms_norm_eps": "1e-5"})"),
                      "\"rms_norm_eps\" must be a number, got string \"1e-5\"");
  expect_config_error(minimal_config("LlamaForCausalLM", R"({"rope_theta": 1e300})"), "\"rope_theta\" is out of range for a float");
  expect_config_error(minimal_config("LlamaForCausalLM", R"({"rope_scaling": "llama3"})"),
                      "\"rope_scaling\" must be an object, got string \"llama3\"");
  expect_config_error(minimal_config("LlamaForCausalLM", R"({"eos_token_id": [128001, "128009"]})"),
                      "\"eos_token_id\" must hold token ids (non-negative integers), got string \"128009\"");
  expect_config_error(minimal_config("LlamaForCausalLM", R"({"bos_token_id": -1})"),
                      "\"bos_token_id\" must hold token ids (non-negative integers), got integer -1");
}

TEST(ModelConfigErrors, HeadsNotDividingHiddenSize) {
  expect_config_error(minimal_config("LlamaForCausalLM", R"({"num_attention_heads": 30, "num_key_value_heads": 10})"),
                      "hidden_size 2048 is not divisible by num_attention_heads 30, and no head_dim is given");
  // With an explicit head_dim the division is not needed.
  const ModelConfig config = ModelConfig::parse(
      minimal_config("LlamaForCausalLM", R"({"num_attention_heads": 30, "num_key_value_heads": 10, "head_dim": 64})"), "x");
  EXPECT_EQ(config.head_dim, 64);
}

TEST(ModelConfigErrors, KeyValueHeadsNotDividingHeads) {
  expect_config_error(minimal_config("LlamaForCausalLM", R"({"num_key_value_heads": 5})"),
                      "num_attention_heads 32 is not a multiple of num_key_value_heads 5");
  // Qwen2's absent-key default of 32 KV heads does not fit a 16-head model, exactly as in HF.
  expect_config_error(minimal_config("Qwen2ForCausalLM", R"({"num_attention_heads": 16})"),
                      "num_attention_heads 16 is not a multiple of num_key_value_heads 32");
}

TEST(ModelConfigErrors, OddHeadDim) {
  expect_config_error(minimal_config("LlamaForCausalLM", R"({"head_dim": 63})"), "head_dim 63 must be even for rotary embeddings");
}

TEST(ModelConfigErrors, UnsupportedRopeType) {
  expect_config_error(minimal_config("LlamaForCausalLM", R"({"rope_scaling": {"type": "dynamic", "factor": 2.0}})"),
                      "unsupported rope type \"dynamic\", supported: default, linear, llama3, yarn");
  expect_config_error(minimal_config("LlamaForCausalLM", R"({"rope_parameters": {"rope_type": "longrope", "rope_theta": 10000}})"),
                      "unsupported rope type \"longrope\"");
}

TEST(ModelConfigErrors, MissingRopeParameters) {
  expect_config_error(minimal_config("LlamaForCausalLM", R"({"rope_scaling": {"rope_type": "linear"}})"),
                      "\"rope_scaling.factor\" is required for rope type \"linear\"");
  expect_config_error(minimal_config("LlamaForCausalLM", R"({"rope_parameters": {"rope_type": "llama3", "factor": 8.0,
                        "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}})"),
                      "\"rope_parameters.low_freq_factor\" is required for rope type \"llama3\"");
  expect_config_error(minimal_config("Qwen2ForCausalLM", R"({"rope_scaling": {"type": "yarn"}})"),
                      "\"rope_scaling.factor\" is required for rope type \"yarn\"");
}

TEST(ModelConfigErrors, BadRopeValues) {
  expect_config_error(minimal_config("LlamaForCausalLM", R"({"rope_scaling": {"rope_type": "linear", "factor": -2}})"),
                      "\"rope_scaling.factor\" must be positive, got -2");
  expect_config_error(minimal_config("LlamaForCausalLM", R"({"rope_scaling": {"rope_type": "yarn", "factor": 2,
                        "original_max_position_embeddings": 0}})"),
                      "\"rope_scaling.original_max_position_embeddings\" must be positive, got 0");
  expect_config_error(minimal_config("LlamaForCausalLM", R"({"rope_parameters": {"rope_type": "default", "rope_theta": 0}})"),
                      "\"rope_parameters.rope_theta\" must be positive, got 0");
}

TEST(ModelConfigErrors, PartialRotaryFactor) {
  expect_config_error(minimal_config("LlamaForCausalLM", R"({"partial_rotary_factor": 0.5})"),
                      "\"partial_rotary_factor\" is 0.5; only 1.0 is supported");
  expect_config_error(minimal_config("LlamaForCausalLM", R"({"rope_parameters": {"rope_type": "default", "partial_rotary_factor": 0.25}})"),
                      "\"rope_parameters.partial_rotary_factor\" is 0.25; only 1.0 is supported");
}

TEST(ModelConfigErrors, PerLayerTypeRopeParameters) {
  expect_config_error(minimal_config("Qwen3ForCausalLM", R"({"rope_parameters": {
                        "full_attention": {"rope_type": "default", "rope_theta": 1000000},
                        "sliding_attention": {"rope_type": "default", "rope_theta": 10000}}})"),
                      "\"rope_parameters.full_attention\" holds per-layer-type RoPE parameters, which are not supported");
}

TEST(ModelConfigErrors, UnsupportedHiddenAct) {
  expect_config_error(minimal_config("LlamaForCausalLM", R"({"hidden_act": "gelu"})"),
                      "hidden_act \"gelu\" is not supported, supported: silu");
}

TEST(ModelConfigErrors, UnsupportedTorchDtype) {
  expect_config_error(minimal_config("LlamaForCausalLM", R"({"torch_dtype": "int8"})"),
                      "torch_dtype \"int8\" is not supported, supported: float32, float16, bfloat16");
  expect_config_error(minimal_config("LlamaForCausalLM", R"({"dtype": "float64", "torch_dtype": "bfloat16"})"),
                      "dtype \"float64\" is not supported");
}

TEST(ModelConfigErrors, MixedSlidingAndFullLayers) {
  expect_config_error(minimal_config("Qwen2ForCausalLM", R"({"use_sliding_window": true, "max_window_layers": 2})"),
                      "use_sliding_window with 2 of 4 layers sliding (max_window_layers 2) is not supported; only all or none");
  expect_config_error(minimal_config("Qwen3ForCausalLM", R"({"use_sliding_window": true,
                        "layer_types": ["full_attention", "sliding_attention", "full_attention", "sliding_attention"]})"),
                      "use_sliding_window with 2 of 4 layers sliding (layer_types)");
}

TEST(ModelConfigErrors, BadLayerTypes) {
  expect_config_error(minimal_config("Qwen2ForCausalLM", R"({"use_sliding_window": true, "layer_types": ["sliding_attention"]})"),
                      "\"layer_types\" must list one entry per layer (4), got array");
  expect_config_error(minimal_config("Qwen2ForCausalLM", R"({"use_sliding_window": true,
                        "layer_types": ["full_attention", "full_attention", "full_attention", "chunked_attention"]})"),
                      "\"layer_types\" entries must be \"full_attention\" or \"sliding_attention\", got string \"chunked_attention\"");
}

}  // namespace
}  // namespace shardlm
