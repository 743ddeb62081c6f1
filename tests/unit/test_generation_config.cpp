// Tests for generation_config.json: the files shipped with Llama-3.1, Qwen2.5 and Mistral (eos as
// a list and as one id), the optional file being absent, nulls, and each validation error.
#include <gtest/gtest.h>

#include <stdlib.h>

#include <fstream>

#include "error_message.h"
#include "core/error.h"
#include "io/generation_config.h"

namespace shardlm {
namespace {

namespace fs = std::filesystem;

void expect_generation_error(std::string_view text, std::string_view expected) {
  const std::string message = error_message([&] { GenerationConfig::parse(text, "generation_config.json"); });
  EXPECT_EQ(message.rfind("generation_config.json: ", 0), 0u) << message;
  EXPECT_NE(message.find(expected), std::string::npos) << "missing \"" << expected << "\" in: " << message;
}

TEST(GenerationConfig, Llama31EosList) {
  const GenerationConfig config = GenerationConfig::parse(R"({
    "bos_token_id": 128000,
    "do_sample": true,
    "eos_token_id": [128001, 128008, 128009],
    "temperature": 0.6,
    "top_p": 0.9,
    "transformers_version": "4.42.3"
  })", "generation_config.json");
  EXPECT_EQ(config.bos_token_id, 128000);
  EXPECT_EQ(config.eos_token_ids, (std::vector<int>{128001, 128008, 128009}));
  EXPECT_EQ(config.do_sample, true);
  EXPECT_EQ(config.temperature, 0.6f);
  EXPECT_EQ(config.top_p, 0.9f);
  EXPECT_FALSE(config.top_k.has_value());
  EXPECT_FALSE(config.max_new_tokens.has_value());
}

TEST(GenerationConfig, Qwen25WithTopK) {
  const GenerationConfig config = GenerationConfig::parse(R"({
    "bos_token_id": 151643,
    "pad_token_id": 151643,
    "do_sample": true,
    "eos_token_id": [151645, 151643],
    "repetition_penalty": 1.05,
    "temperature": 0.7,
    "top_p": 0.8,
    "top_k": 20,
    "transformers_version": "4.37.0"
  })", "generation_config.json");
  EXPECT_EQ(config.eos_token_ids, (std::vector<int>{151645, 151643}));
  EXPECT_EQ(config.top_k, 20);
  EXPECT_EQ(config.temperature, 0.7f);
  EXPECT_EQ(config.repetition_penalty, 1.05f);
  EXPECT_EQ(GenerationConfig::parse(R"({"min_p": 0.05})", "g.json").min_p, 0.05f);
}

TEST(GenerationConfig, MistralEosInt) {
  const GenerationConfig config =
      GenerationConfig::parse(R"({"bos_token_id": 1, "eos_token_id": 2, "transformers_version": "4.34.0"})", "x");
  EXPECT_EQ(config.bos_token_id, 1);
  EXPECT_EQ(config.eos_token_ids, std::vector<int>{2});
  EXPECT_FALSE(config.temperature.has_value());
  EXPECT_FALSE(config.do_sample.has_value());
}

TEST(GenerationConfig, NullsAndEmptyObjectMeanAbsent) {
  const GenerationConfig config = GenerationConfig::parse(
      R"({"bos_token_id": null, "eos_token_id": null, "temperature": null, "top_k": null, "max_new_tokens": 512})", "x");
  EXPECT_FALSE(config.bos_token_id.has_value());
  EXPECT_TRUE(config.eos_token_ids.empty());
  EXPECT_FALSE(config.temperature.has_value());
  EXPECT_FALSE(config.top_k.has_value());
  EXPECT_EQ(config.max_new_tokens, 512);
  EXPECT_TRUE(GenerationConfig::parse("{}", "x").eos_token_ids.empty());
}

TEST(GenerationConfig, GreedyTemperatureZeroIsAccepted) {
  EXPECT_EQ(GenerationConfig::parse(R"({"temperature": 0, "do_sample": false})", "x").temperature, 0.0f);
}

TEST(GenerationConfig, FromDirAbsentFileIsEmptyAndPresentFileIsRead) {
  std::string pattern = (fs::temp_directory_path() / "shardlm_generation_XXXXXX").string();
  ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
  const fs::path dir = pattern;
  const GenerationConfig absent = GenerationConfig::from_dir(dir);
  std::ofstream(dir / "generation_config.json") << R"({"eos_token_id": [7, 8], "top_p": 0.5})";
  const GenerationConfig present = GenerationConfig::from_dir(dir);
  std::ofstream(dir / "generation_config.json") << R"({"top_p": 2})";
  const std::string invalid = error_message([&] { GenerationConfig::from_dir(dir); });
  fs::remove_all(dir);

  EXPECT_FALSE(absent.bos_token_id.has_value());
  EXPECT_TRUE(absent.eos_token_ids.empty());
  EXPECT_FALSE(absent.top_p.has_value());
  EXPECT_EQ(present.eos_token_ids, (std::vector<int>{7, 8}));
  EXPECT_EQ(present.top_p, 0.5f);
  EXPECT_NE(invalid.find((dir / "generation_config.json").string() + ": \"top_p\" must be between 0 and 1, got 2"),
            std::string::npos)
      << invalid;
}

TEST(GenerationConfigErrors, MalformedJson) {
  expect_generation_error(R"({"eos_token_id": [1, 2)", "generation config is not valid JSON");
  expect_generation_error("42", "generation config must be a JSON object, got integer 42");
}

TEST(GenerationConfigErrors, BadTokenIds) {
  expect_generation_error(R"({"eos_token_id": [2, "</s>"]})",
                          "\"eos_token_id\" must hold token ids (non-negative integers), got string \"</s>\"");
  expect_generation_error(R"({"eos_token_id": -1})", "\"eos_token_id\" must hold token ids (non-negative integers), got integer -1");
  expect_generation_error(R"({"bos_token_id": 1.5})", "\"bos_token_id\" must hold token ids (non-negative integers), got number 1.5");
}

TEST(GenerationConfigErrors, OutOfRangeSamplingValues) {
  expect_generation_error(R"({"temperature": -0.5})", "\"temperature\" must not be negative, got -0.5");
  expect_generation_error(R"({"top_p": 1.5})", "\"top_p\" must be between 0 and 1, got 1.5");
  expect_generation_error(R"({"top_k": -1})", "\"top_k\" must not be negative, got -1");
  expect_generation_error(R"({"max_new_tokens": 0})", "\"max_new_tokens\" must be positive, got 0");
  expect_generation_error(R"({"repetition_penalty": 0})", "\"repetition_penalty\" must be positive, got 0");
  expect_generation_error(R"({"min_p": 2})", "\"min_p\" must be between 0 and 1, got 2");
}

TEST(GenerationConfigErrors, WrongTypes) {
  expect_generation_error(R"({"do_sample": "yes"})", "\"do_sample\" must be true or false, got string \"yes\"");
  expect_generation_error(R"({"temperature": "0.7"})", "\"temperature\" must be a number, got string \"0.7\"");
  expect_generation_error(R"({"top_k": 20.0})", "\"top_k\" must be an integer, got number 20");
}

}  // namespace
}  // namespace shardlm
