// config.json parsing of published configs: Llama-3-8B, Llama-3.1/3.2, Qwen2.5, Qwen3 and Mistral-7B,
// in the old and the Transformers 5 spellings (the defaults for absent keys and the validation
// errors are test_model_config.cpp's).
#include <gtest/gtest.h>

#include "io/model_config.h"

namespace shardlm {
namespace {

// ---------------------------------------------------------------------------------------------
// Published configs

const char* kLlama3_8B = R"({
  "architectures": ["LlamaForCausalLM"],
  "attention_bias": false,
  "attention_dropout": 0.0,
  "bos_token_id": 128000,
  "eos_token_id": 128001,
  "hidden_act": "silu",
  "hidden_size": 4096,
  "initializer_range": 0.02,
  "intermediate_size": 14336,
  "max_position_embeddings": 8192,
  "model_type": "llama",
  "num_attention_heads": 32,
  "num_hidden_layers": 32,
  "num_key_value_heads": 8,
  "pretraining_tp": 1,
  "rms_norm_eps": 1e-05,
  "rope_scaling": null,
  "rope_theta": 500000.0,
  "tie_word_embeddings": false,
  "torch_dtype": "bfloat16",
  "transformers_version": "4.40.0.dev0",
  "use_cache": true,
  "vocab_size": 128256
})";

const char* kLlama31_8B_Instruct = R"({
  "architectures": ["LlamaForCausalLM"],
  "attention_bias": false,
  "attention_dropout": 0.0,
  "bos_token_id": 128000,
  "eos_token_id": [128001, 128008, 128009],
  "hidden_act": "silu",
  "hidden_size": 4096,
  "initializer_range": 0.02,
  "intermediate_size": 14336,
  "max_position_embeddings": 131072,
  "mlp_bias": false,
  "model_type": "llama",
  "num_attention_heads": 32,
  "num_hidden_layers": 32,
  "num_key_value_heads": 8,
  "pretraining_tp": 1,
  "rms_norm_eps": 1e-05,
  "rope_scaling": {
    "factor": 8.0,
    "low_freq_factor": 1.0,
    "high_freq_factor": 4.0,
    "original_max_position_embeddings": 8192,
    "rope_type": "llama3"
  },
  "rope_theta": 500000.0,
  "tie_word_embeddings": false,
  "torch_dtype": "bfloat16",
  "transformers_version": "4.43.0.dev0",
  "use_cache": true,
  "vocab_size": 128256
})";

// The same model as saved by Transformers 5: rope_parameters carries rope_theta, "dtype" replaces
// "torch_dtype".
const char* kLlama31_8B_Transformers5 = R"({
  "architectures": ["LlamaForCausalLM"],
  "attention_bias": false,
  "bos_token_id": 128000,
  "dtype": "bfloat16",
  "eos_token_id": [128001, 128008, 128009],
  "head_dim": 128,
  "hidden_act": "silu",
  "hidden_size": 4096,
  "intermediate_size": 14336,
  "max_position_embeddings": 131072,
  "mlp_bias": false,
  "model_type": "llama",
  "num_attention_heads": 32,
  "num_hidden_layers": 32,
  "num_key_value_heads": 8,
  "rms_norm_eps": 1e-05,
  "rope_parameters": {
    "factor": 8.0,
    "high_freq_factor": 4.0,
    "low_freq_factor": 1.0,
    "original_max_position_embeddings": 8192,
    "rope_theta": 500000.0,
    "rope_type": "llama3"
  },
  "tie_word_embeddings": false,
  "transformers_version": "5.0.0",
  "vocab_size": 128256
})";

const char* kLlama32_1B = R"({
  "architectures": ["LlamaForCausalLM"],
  "attention_bias": false,
  "bos_token_id": 128000,
  "eos_token_id": 128001,
  "head_dim": 64,
  "hidden_act": "silu",
  "hidden_size": 2048,
  "intermediate_size": 8192,
  "max_position_embeddings": 131072,
  "mlp_bias": false,
  "model_type": "llama",
  "num_attention_heads": 32,
  "num_hidden_layers": 16,
  "num_key_value_heads": 8,
  "rms_norm_eps": 1e-05,
  "rope_scaling": {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                   "original_max_position_embeddings": 8192, "rope_type": "llama3"},
  "rope_theta": 500000.0,
  "tie_word_embeddings": true,
  "torch_dtype": "bfloat16",
  "vocab_size": 128256
})";

const char* kQwen25_7B_Instruct = R"({
  "architectures": ["Qwen2ForCausalLM"],
  "attention_dropout": 0.0,
  "bos_token_id": 151643,
  "eos_token_id": 151645,
  "hidden_act": "silu",
  "hidden_size": 3584,
  "initializer_range": 0.02,
  "intermediate_size": 18944,
  "max_position_embeddings": 32768,
  "max_window_layers": 28,
  "model_type": "qwen2",
  "num_attention_heads": 28,
  "num_hidden_layers": 28,
  "num_key_value_heads": 4,
  "rms_norm_eps": 1e-06,
  "rope_theta": 1000000.0,
  "sliding_window": 131072,
  "tie_word_embeddings": false,
  "torch_dtype": "bfloat16",
  "transformers_version": "4.43.1",
  "use_cache": true,
  "use_sliding_window": false,
  "vocab_size": 152064
})";

// Qwen2.5's model card enables YaRN for long contexts by adding this old-style block.
const char* kQwen25_7B_Yarn = R"({
  "architectures": ["Qwen2ForCausalLM"],
  "hidden_size": 3584, "intermediate_size": 18944, "num_attention_heads": 28, "num_hidden_layers": 28,
  "num_key_value_heads": 4, "vocab_size": 152064, "max_position_embeddings": 32768, "rope_theta": 1000000.0,
  "rope_scaling": {"factor": 4.0, "original_max_position_embeddings": 32768, "type": "yarn"},
  "use_sliding_window": false, "sliding_window": 131072, "max_window_layers": 28
})";

const char* kQwen3_8B = R"({
  "architectures": ["Qwen3ForCausalLM"],
  "attention_bias": false,
  "attention_dropout": 0.0,
  "bos_token_id": 151643,
  "eos_token_id": 151645,
  "head_dim": 128,
  "hidden_act": "silu",
  "hidden_size": 4096,
  "initializer_range": 0.02,
  "intermediate_size": 12288,
  "max_position_embeddings": 40960,
  "max_window_layers": 36,
  "model_type": "qwen3",
  "num_attention_heads": 32,
  "num_hidden_layers": 36,
  "num_key_value_heads": 8,
  "rms_norm_eps": 1e-06,
  "rope_scaling": null,
  "rope_theta": 1000000,
  "sliding_window": null,
  "tie_word_embeddings": false,
  "torch_dtype": "bfloat16",
  "transformers_version": "4.51.0",
  "use_cache": true,
  "use_sliding_window": false,
  "vocab_size": 151936
})";

// head_dim 128 although hidden_size / num_attention_heads is 64.
const char* kQwen3_0_6B = R"({
  "architectures": ["Qwen3ForCausalLM"],
  "attention_bias": false,
  "bos_token_id": 151643,
  "eos_token_id": 151645,
  "head_dim": 128,
  "hidden_act": "silu",
  "hidden_size": 1024,
  "intermediate_size": 3072,
  "max_position_embeddings": 40960,
  "max_window_layers": 28,
  "model_type": "qwen3",
  "num_attention_heads": 16,
  "num_hidden_layers": 28,
  "num_key_value_heads": 8,
  "rms_norm_eps": 1e-06,
  "rope_scaling": null,
  "rope_theta": 1000000,
  "sliding_window": null,
  "tie_word_embeddings": true,
  "torch_dtype": "bfloat16",
  "use_sliding_window": false,
  "vocab_size": 151936
})";

const char* kMistral7B_v01 = R"({
  "architectures": ["MistralForCausalLM"],
  "bos_token_id": 1,
  "eos_token_id": 2,
  "hidden_act": "silu",
  "hidden_size": 4096,
  "initializer_range": 0.02,
  "intermediate_size": 14336,
  "max_position_embeddings": 32768,
  "model_type": "mistral",
  "num_attention_heads": 32,
  "num_hidden_layers": 32,
  "num_key_value_heads": 8,
  "rms_norm_eps": 1e-05,
  "rope_theta": 10000.0,
  "sliding_window": 4096,
  "tie_word_embeddings": false,
  "torch_dtype": "bfloat16",
  "transformers_version": "4.34.0.dev0",
  "use_cache": true,
  "vocab_size": 32000
})";

const char* kMistral7B_Instruct_v03 = R"({
  "architectures": ["MistralForCausalLM"],
  "attention_dropout": 0.0,
  "bos_token_id": 1,
  "eos_token_id": 2,
  "hidden_act": "silu",
  "hidden_size": 4096,
  "initializer_range": 0.02,
  "intermediate_size": 14336,
  "max_position_embeddings": 32768,
  "model_type": "mistral",
  "num_attention_heads": 32,
  "num_hidden_layers": 32,
  "num_key_value_heads": 8,
  "rms_norm_eps": 1e-05,
  "rope_theta": 1000000.0,
  "sliding_window": null,
  "tie_word_embeddings": false,
  "torch_dtype": "bfloat16",
  "transformers_version": "4.42.0.dev0",
  "use_cache": true,
  "vocab_size": 32768
})";

TEST(ModelConfig, Llama3_8B) {
  const ModelConfig config = ModelConfig::parse(kLlama3_8B, "config.json");
  EXPECT_EQ(config.arch, ModelArch::LLAMA);
  EXPECT_EQ(config.architecture_name, "LlamaForCausalLM");
  EXPECT_EQ(config.hidden_size, 4096);
  EXPECT_EQ(config.intermediate_size, 14336);
  EXPECT_EQ(config.num_hidden_layers, 32);
  EXPECT_EQ(config.num_attention_heads, 32);
  EXPECT_EQ(config.num_key_value_heads, 8);
  EXPECT_EQ(config.head_dim, 128);
  EXPECT_EQ(config.vocab_size, 128256);
  EXPECT_EQ(config.max_position_embeddings, 8192);
  EXPECT_FLOAT_EQ(config.rms_norm_eps, 1e-5f);
  EXPECT_FLOAT_EQ(config.rope_theta, 500000.0f);
  EXPECT_EQ(config.rope_scaling.type, RopeType::DEFAULT);
  EXPECT_FALSE(config.tie_word_embeddings);
  EXPECT_FALSE(config.attention_bias);
  EXPECT_FALSE(config.attention_output_bias);
  EXPECT_FALSE(config.mlp_bias);
  EXPECT_FALSE(config.qk_norm);
  EXPECT_FALSE(config.sliding_window.has_value());
  EXPECT_EQ(config.bos_token_id, 128000);
  EXPECT_EQ(config.eos_token_ids, std::vector<int>{128001});
  EXPECT_EQ(config.torch_dtype, DType::BF16);
  EXPECT_EQ(config.hidden_act, "silu");
}

void expect_llama31_rope(const ModelConfig& config) {
  EXPECT_FLOAT_EQ(config.rope_theta, 500000.0f);
  EXPECT_EQ(config.rope_scaling.type, RopeType::LLAMA3);
  EXPECT_FLOAT_EQ(config.rope_scaling.factor, 8.0f);
  EXPECT_FLOAT_EQ(config.rope_scaling.low_freq_factor, 1.0f);
  EXPECT_FLOAT_EQ(config.rope_scaling.high_freq_factor, 4.0f);
  EXPECT_EQ(config.rope_scaling.original_max_position_embeddings, 8192);
  EXPECT_EQ(config.max_position_embeddings, 131072);
  EXPECT_EQ(config.eos_token_ids, (std::vector<int>{128001, 128008, 128009}));
  EXPECT_EQ(config.torch_dtype, DType::BF16);
}

TEST(ModelConfig, Llama31RopeLlama3) { expect_llama31_rope(ModelConfig::parse(kLlama31_8B_Instruct, "config.json")); }

TEST(ModelConfig, Llama31Transformers5Spelling) {
  const ModelConfig config = ModelConfig::parse(kLlama31_8B_Transformers5, "config.json");
  expect_llama31_rope(config);
  EXPECT_EQ(config.head_dim, 128);
}

TEST(ModelConfig, Llama32TiedWithExplicitHeadDim) {
  const ModelConfig config = ModelConfig::parse(kLlama32_1B, "config.json");
  EXPECT_TRUE(config.tie_word_embeddings);
  EXPECT_EQ(config.head_dim, 64);
  EXPECT_EQ(config.num_hidden_layers, 16);
  EXPECT_FLOAT_EQ(config.rope_scaling.factor, 32.0f);
}

TEST(ModelConfig, Qwen25HasQkvBiasOnly) {
  const ModelConfig config = ModelConfig::parse(kQwen25_7B_Instruct, "config.json");
  EXPECT_EQ(config.arch, ModelArch::QWEN2);
  EXPECT_EQ(config.head_dim, 128);  // 3584 / 28
  EXPECT_EQ(config.num_key_value_heads, 4);
  EXPECT_TRUE(config.attention_bias);
  EXPECT_FALSE(config.attention_output_bias);
  EXPECT_FALSE(config.mlp_bias);
  EXPECT_FALSE(config.qk_norm);
  EXPECT_FALSE(config.sliding_window.has_value());  // use_sliding_window is false
  EXPECT_FLOAT_EQ(config.rope_theta, 1e6f);
  EXPECT_FLOAT_EQ(config.rms_norm_eps, 1e-6f);
  EXPECT_EQ(config.bos_token_id, 151643);
  EXPECT_EQ(config.eos_token_ids, std::vector<int>{151645});
  EXPECT_EQ(config.vocab_size, 152064);
}

TEST(ModelConfig, Qwen25YarnOldSpelling) {
  const ModelConfig config = ModelConfig::parse(kQwen25_7B_Yarn, "config.json");
  const RopeScaling& rope = config.rope_scaling;
  EXPECT_EQ(rope.type, RopeType::YARN);
  EXPECT_FLOAT_EQ(rope.factor, 4.0f);
  EXPECT_EQ(rope.original_max_position_embeddings, 32768);
  EXPECT_FLOAT_EQ(rope.beta_fast, 32.0f);
  EXPECT_FLOAT_EQ(rope.beta_slow, 1.0f);
  EXPECT_FALSE(rope.attention_factor.has_value());
  EXPECT_FALSE(rope.mscale.has_value());
  EXPECT_TRUE(rope.truncate);
  EXPECT_FLOAT_EQ(config.rope_theta, 1e6f);
  // Absent from this config, so Qwen2's defaults apply.
  EXPECT_FALSE(config.bos_token_id.has_value());
  EXPECT_TRUE(config.eos_token_ids.empty());
  EXPECT_FALSE(config.torch_dtype.has_value());
}

TEST(ModelConfig, Qwen3HasQkNormAndNoBias) {
  const ModelConfig config = ModelConfig::parse(kQwen3_8B, "config.json");
  EXPECT_EQ(config.arch, ModelArch::QWEN3);
  EXPECT_TRUE(config.qk_norm);
  EXPECT_FALSE(config.attention_bias);
  EXPECT_FALSE(config.attention_output_bias);
  EXPECT_EQ(config.head_dim, 128);
  EXPECT_EQ(config.num_hidden_layers, 36);
  EXPECT_EQ(config.max_position_embeddings, 40960);
  EXPECT_FLOAT_EQ(config.rope_theta, 1e6f);  // written as an integer
  EXPECT_FALSE(config.sliding_window.has_value());
}

TEST(ModelConfig, Qwen3HeadDimIndependentOfHiddenSize) {
  const ModelConfig config = ModelConfig::parse(kQwen3_0_6B, "config.json");
  EXPECT_EQ(config.head_dim, 128);
  EXPECT_EQ(config.hidden_size / config.num_attention_heads, 64);
  EXPECT_TRUE(config.tie_word_embeddings);
}

TEST(ModelConfig, Mistral7BSlidingWindow) {
  const ModelConfig config = ModelConfig::parse(kMistral7B_v01, "config.json");
  EXPECT_EQ(config.arch, ModelArch::MISTRAL);
  EXPECT_EQ(config.sliding_window, 4096);
  EXPECT_EQ(config.num_key_value_heads, 8);
  EXPECT_EQ(config.bos_token_id, 1);
  EXPECT_EQ(config.eos_token_ids, std::vector<int>{2});
  EXPECT_FALSE(config.attention_bias);
}

TEST(ModelConfig, Mistral7BInstructV03NullSlidingWindow) {
  const ModelConfig config = ModelConfig::parse(kMistral7B_Instruct_v03, "config.json");
  EXPECT_FALSE(config.sliding_window.has_value());
  EXPECT_FLOAT_EQ(config.rope_theta, 1e6f);
  EXPECT_EQ(config.vocab_size, 32768);
}


}  // namespace
}  // namespace shardlm
