// POST /v1/completions bodies: OpenAI's defaults or the server's, every prompt form, and every bad field refused
// with a 400 that names it.
#include <gtest/gtest.h>

#include <string>

#include "api_refusal.h"
#include "serve/api_error.h"
#include "serve/completion_request.h"
#include "serve/sampling_defaults.h"

namespace shardlm::serve {
namespace {

CompletionRequest parse(const std::string& body) { return parse_completion_request(body, "kjv"); }

std::pair<int, std::string> refusal(const std::string& body) { return refusal_of(parse, body); }

TEST(CompletionRequest, DefaultsAreOpenAIs) {
  const CompletionRequest request = parse(R"({"model": "kjv", "prompt": "In the beginning"})");
  ASSERT_EQ(request.prompts.size(), 1u);
  EXPECT_EQ(std::get<std::string>(request.prompts[0]), "In the beginning");
  EXPECT_EQ(request.generation.max_tokens, std::optional<int>(16));
  EXPECT_EQ(request.generation.sampling.temperature, 1.0f);
  EXPECT_EQ(request.generation.sampling.top_p, 1.0f);
  EXPECT_EQ(request.generation.sampling.top_k, 0);
  EXPECT_FALSE(request.generation.seeded);
  EXPECT_FALSE(request.generation.stream);
}

// The server's defaults (from generation_config.json) fill only the sampling fields a request leaves out.
TEST(CompletionRequest, SamplingFieldsLeftOutTakeTheServersDefaults) {
  GenerationConfig qwen3;
  qwen3.temperature = 0.6f;
  qwen3.top_p = 0.95f;
  qwen3.top_k = 20;
  qwen3.do_sample = false;  // vLLM does not read it: the temperature applies
  qwen3.max_new_tokens = 64;
  qwen3.repetition_penalty = 1.05f;
  qwen3.min_p = 0.05f;
  const SamplingDefaults defaults = SamplingDefaults::from(qwen3);
  EXPECT_EQ(defaults.describe(),
            "temperature 0.6, top_p 0.95, top_k 20, min_p 0.05, repetition_penalty 1.05, max_tokens 64 for chat without one");
  EXPECT_EQ(SamplingDefaults::from(GenerationConfig{}).describe(), "");

  const CompletionRequest left_out = parse_completion_request(R"({"model": "kjv", "prompt": "a"})", "kjv", defaults);
  EXPECT_EQ(left_out.generation.max_tokens, std::optional<int>(16));  // OpenAI's completion default comes first
  EXPECT_EQ(left_out.generation.sampling.temperature, 0.6f);
  EXPECT_EQ(left_out.generation.sampling.top_p, 0.95f);
  EXPECT_EQ(left_out.generation.sampling.top_k, 20);
  EXPECT_EQ(left_out.generation.sampling.repetition_penalty, 1.05f);
  EXPECT_EQ(left_out.generation.sampling.min_p, 0.05f);
  const CompletionRequest given = parse_completion_request(
      R"({"model": "kjv", "prompt": "a", "temperature": 0, "top_p": 1, "top_k": -1, "repetition_penalty": 1,
          "min_p": 0.2})", "kjv", defaults);
  EXPECT_EQ(given.generation.sampling.repetition_penalty, 1.0f);
  EXPECT_EQ(given.generation.sampling.min_p, 0.2f);
  EXPECT_EQ(given.generation.sampling.temperature, 0.0f);
  EXPECT_EQ(given.generation.sampling.top_p, 1.0f);
  EXPECT_EQ(given.generation.sampling.top_k, 0);
}

TEST(CompletionRequest, EveryPromptFormAndSamplingField) {
  const CompletionRequest request = parse(R"({"model": "kjv", "prompt": [[1, 2], "text", [3]], "max_tokens": 5,
      "temperature": 0, "top_p": 0.5, "top_k": -1, "seed": 42, "stop": ["a", "bc"], "stream": true,
      "stream_options": {"include_usage": true}, "n": 3, "echo": true, "logprobs": null, "user": "ignored",
      "ignore_eos": true, "skip_special_tokens": false})");
  ASSERT_EQ(request.prompts.size(), 3u);
  EXPECT_EQ(std::get<std::vector<int32_t>>(request.prompts[0]), (std::vector<int32_t>{1, 2}));
  EXPECT_EQ(std::get<std::string>(request.prompts[1]), "text");
  EXPECT_EQ(request.generation.max_tokens, std::optional<int>(5));
  EXPECT_EQ(request.generation.sampling.temperature, 0.0f);
  EXPECT_EQ(request.generation.sampling.top_p, 0.5f);
  EXPECT_EQ(request.generation.sampling.top_k, 0);
  EXPECT_EQ(request.generation.sampling.seed, 42u);
  EXPECT_EQ(request.generation.sampling.logprobs, -1);
  EXPECT_EQ(parse(R"({"model": "kjv", "prompt": "a", "logprobs": 3})").generation.sampling.logprobs, 3);
  EXPECT_TRUE(request.generation.seeded);
  EXPECT_EQ(request.generation.stop, (std::vector<std::string>{"a", "bc"}));
  EXPECT_TRUE(request.generation.stream);
  EXPECT_TRUE(request.generation.include_usage);
  EXPECT_TRUE(request.generation.ignore_eos);
  EXPECT_FALSE(request.generation.skip_special_tokens);
  EXPECT_TRUE(parse(R"({"model": "kjv", "prompt": "a"})").generation.skip_special_tokens);
  EXPECT_EQ(request.generation.n, 3);
  EXPECT_TRUE(request.generation.echo);
  EXPECT_EQ(std::get<std::vector<int32_t>>(parse(R"({"model": "kjv", "prompt": [7, 8]})").prompts[0]),
            (std::vector<int32_t>{7, 8}));
}

TEST(CompletionRequest, PenaltiesAndLogitBias) {
  const CompletionRequest neutral = parse(R"({"model": "kjv", "prompt": "a", "presence_penalty": 0, "logit_bias": {}})");
  EXPECT_FALSE(neutral.generation.sampling.penalises());
  const SamplingParams sampling = parse(R"({"model": "kjv", "prompt": "a", "presence_penalty": 0.5,
      "frequency_penalty": -1, "repetition_penalty": 1.2, "logit_bias": {"7": 5, "0012": -100}})")
                                      .generation.sampling;
  EXPECT_TRUE(sampling.penalises());
  EXPECT_EQ(sampling.presence_penalty, 0.5f);
  EXPECT_EQ(sampling.frequency_penalty, -1.0f);
  EXPECT_EQ(sampling.repetition_penalty, 1.2f);
  ASSERT_EQ(sampling.logit_bias.size(), 2u);
  EXPECT_EQ(sampling.logit_bias[0].token, 7);
  EXPECT_EQ(sampling.logit_bias[0].bias, 5.0f);
  EXPECT_EQ(sampling.logit_bias[1].token, 12);
  EXPECT_EQ(sampling.logit_bias[1].bias, -100.0f);
}

TEST(CompletionRequest, BadFieldsAreRefusedByName) {
  using Expected = std::pair<int, std::string>;
  EXPECT_EQ(refusal(R"({"model": "kjv"})"), Expected(400, "prompt"));
  EXPECT_EQ(refusal(R"({"prompt": "a"})"), Expected(400, "model"));
  EXPECT_EQ(refusal(R"({"model": "other", "prompt": "a"})"), Expected(400, "model"));
  EXPECT_EQ(refusal(R"({"model": "kjv", "prompt": 5})"), Expected(400, "prompt"));
  EXPECT_EQ(refusal(R"({"model": "kjv", "prompt": [1, -2]})"), Expected(400, "prompt"));
  EXPECT_EQ(refusal(R"({"model": "kjv", "prompt": []})"), Expected(400, "prompt"));
  EXPECT_EQ(refusal(R"({"model": "kjv", "prompt": "a", "max_tokens": 0})"), Expected(400, "max_tokens"));
  EXPECT_EQ(refusal(R"({"model": "kjv", "prompt": "a", "max_tokens": "5"})"), Expected(400, "max_tokens"));
  EXPECT_EQ(refusal(R"({"model": "kjv", "prompt": "a", "temperature": -0.5})"), Expected(400, "temperature"));
  EXPECT_EQ(refusal(R"({"model": "kjv", "prompt": "a", "top_p": 0})"), Expected(400, "top_p"));
  EXPECT_EQ(refusal(R"({"model": "kjv", "prompt": "a", "top_k": -2})"), Expected(400, "top_k"));
  EXPECT_EQ(refusal(R"({"model": "kjv", "prompt": "a", "seed": 1.5})"), Expected(400, "seed"));
  EXPECT_EQ(refusal(R"({"model": "kjv", "prompt": "a", "stop": [1]})"), Expected(400, "stop"));
  EXPECT_EQ(refusal(R"({"model": "kjv", "prompt": "a", "stop": ""})"), Expected(400, "stop"));
  EXPECT_EQ(refusal(R"({"model": "kjv", "prompt": "a", "stream": "yes"})"), Expected(400, "stream"));
  EXPECT_EQ(refusal(R"({"model": "kjv", "prompt": "a", "ignore_eos": 1})"), Expected(400, "ignore_eos"));
  EXPECT_EQ(refusal(R"({"model": "kjv", "prompt": "a", "skip_special_tokens": "no"})"), Expected(400, "skip_special_tokens"));
  EXPECT_EQ(refusal(R"({"model": "kjv", "prompt": "a", "stream_options": {"include_usage": true}})"),
            Expected(400, "stream_options"));
  EXPECT_EQ(refusal(R"({"model": "kjv", "prompt": "a", "n": 0})"), Expected(400, "n"));
  EXPECT_EQ(refusal(R"({"model": "kjv", "prompt": "a", "n": 129})"), Expected(400, "n"));
  EXPECT_EQ(refusal(R"({"model": "kjv", "prompt": ["a", "b", "c", "d", "e", "f", "g", "h", "i"], "n": 128})"),
            Expected(400, "n"));  // 1,152 choices
  EXPECT_EQ(refusal(R"({"model": "kjv", "prompt": "a", "echo": 1})"), Expected(400, "echo"));
  EXPECT_EQ(refusal(R"({"model": "kjv", "prompt": "a", "logprobs": 21})"), Expected(400, "logprobs"));
  EXPECT_EQ(refusal(R"({"model": "kjv", "prompt": "a", "logprobs": true})"), Expected(400, "logprobs"));
  EXPECT_EQ(refusal(R"({"model": "kjv", "prompt": "a", "top_logprobs": 2})"), Expected(400, "top_logprobs"));
  EXPECT_EQ(refusal(R"({"model": "kjv", "prompt": "a", "frequency_penalty": 2.5})"), Expected(400, "frequency_penalty"));
  EXPECT_EQ(refusal(R"({"model": "kjv", "prompt": "a", "presence_penalty": "1"})"), Expected(400, "presence_penalty"));
  EXPECT_EQ(refusal(R"({"model": "kjv", "prompt": "a", "repetition_penalty": 0})"), Expected(400, "repetition_penalty"));
  EXPECT_EQ(refusal(R"({"model": "kjv", "prompt": "a", "min_p": 1.5})"), Expected(400, "min_p"));
  EXPECT_EQ(refusal(R"({"model": "kjv", "prompt": "a", "logit_bias": [1]})"), Expected(400, "logit_bias"));
  EXPECT_EQ(refusal(R"({"model": "kjv", "prompt": "a", "logit_bias": {"a7": 1}})"), Expected(400, "logit_bias"));
  EXPECT_EQ(refusal(R"({"model": "kjv", "prompt": "a", "logit_bias": {"-7": 1}})"), Expected(400, "logit_bias"));
  EXPECT_EQ(refusal(R"({"model": "kjv", "prompt": "a", "logit_bias": {"7": 101}})"), Expected(400, "logit_bias"));
  EXPECT_EQ(refusal(R"({"model": "kjv", "prompt": "a", "logit_bias": {"99999999999": 1}})"), Expected(400, "logit_bias"));
  EXPECT_EQ(refusal("{\"model\": \"kjv\", \"prompt\": \"a\xff\"}"), Expected(400, ""));  // the JSON parser refuses it
  EXPECT_EQ(refusal(R"({"model": "kjv", "prompt": "a")"), Expected(400, ""));
  EXPECT_EQ(refusal(R"([1, 2])"), Expected(400, ""));
  EXPECT_EQ(refusal(R"({"model": 1e999999, "prompt": "a"})"), Expected(400, ""));  // found by the fuzzer
}

TEST(CompletionRequest, ErrorBodiesAreOpenAIsShapeEvenForBytesThatAreNotUtf8) {
  const ApiError error(400, "model \"\xff\" does not exist", "model");
  const nlohmann::json body = nlohmann::json::parse(error.body_text());
  EXPECT_EQ(body["error"]["param"], "model");
  EXPECT_EQ(body["error"]["type"], "invalid_request_error");
  EXPECT_EQ(body["error"]["code"], 400);
  EXPECT_EQ(ApiError(401, "key").body()["error"]["type"], "authentication_error");
}

}  // namespace
}  // namespace shardlm::serve
