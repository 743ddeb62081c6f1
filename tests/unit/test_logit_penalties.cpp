// Penalties and logit bias: the arithmetic (Transformers' repetition penalty, OpenAI's presence and
// frequency penalties, the bias added first), Transformers' own greedy tokens under its repetition
// penalty, and greedy decoding under all of them through the Engine against an oracle that applies
// the definitions to each step's raw logits: with the prompt whole or in chunks, from the prefix
// cache, after a recompute, over two tensor-parallel ranks.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cfloat>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <memory>

#include "engine/engine.h"
#include "error_message.h"
#include "ops/logit_penalties.h"
#include "penalised_greedy.h"
#include "runtime/generator.h"
#include "tokenizer/tokenizer.h"

namespace shardlm {
namespace {

const std::filesystem::path kFixture = std::filesystem::path(SHARDLM_FIXTURES_DIR) / "models" / "llama-gqa-llama3rope-f32";

std::unique_ptr<Engine> open_engine(int max_sequences, int tp = 1) {
  EngineOptions options;
  options.model_dir = kFixture;
  options.max_sequences = max_sequences;
  options.max_seq_len = 96;
  options.tp = tp;
  return Engine::open(options);
}

TEST(LogitPenalties, TransformersAndOpenAIsDefinitions) {
  const PenaltyScales scales{2.0f, 0.5f, 0.25f};
  // Repetition: a positive logit is divided, a negative one multiplied.
  EXPECT_FLOAT_EQ(penalised_logit(3.0f, {1, 0, 1, 0.0f}, scales), 1.5f);
  EXPECT_FLOAT_EQ(penalised_logit(-3.0f, {1, 0, 1, 0.0f}, scales), -6.0f);
  // Output counts: the repetition penalty, then frequency times the count and presence once.
  EXPECT_FLOAT_EQ(penalised_logit(4.0f, {1, 3, 0, 0.0f}, scales), 4.0f / 2.0f - 0.5f * 3.0f - 0.25f);
  // The bias comes first: -1 + 3 = 2 is positive, so it is divided.
  EXPECT_FLOAT_EQ(penalised_logit(-1.0f, {1, 0, 1, 3.0f}, scales), 1.0f);
  // A biased token the sequence does not hold only moves by its bias.
  EXPECT_FLOAT_EQ(penalised_logit(-1.0f, {1, 0, 0, 3.0f}, scales), 2.0f);
  // A finite logit stays finite; the model's own NaN or infinity is left for the sampler to report.
  EXPECT_EQ(penalised_logit(-FLT_MAX, {1, 0, 1, 0.0f}, PenaltyScales{1e30f, 0.0f, 0.0f}), -FLT_MAX);
  EXPECT_TRUE(std::isnan(penalised_logit(std::nanf(""), {1, 2, 1, 5.0f}, scales)));
  EXPECT_EQ(penalised_logit(INFINITY, {1, 2, 1, 5.0f}, scales), INFINITY);
}

TEST(LogitPenalties, SettingsOutOfRangeAreRefusedByName) {
  SamplingParams sampling;
  sampling.repetition_penalty = 0.0f;
  EXPECT_ERROR_NAMES(validate_sampling_params(sampling), "--repetition-penalty");
  sampling = {};
  sampling.presence_penalty = 2.5f;
  EXPECT_ERROR_NAMES(validate_sampling_params(sampling), "--presence-penalty");
  sampling = {};
  sampling.frequency_penalty = -3.0f;
  EXPECT_ERROR_NAMES(validate_sampling_params(sampling), "--frequency-penalty");
  sampling = {};
  sampling.logit_bias = {{5, 1.0f}, {5, 2.0f}};
  EXPECT_ERROR_NAMES(validate_sampling_params(sampling), "logit_bias: token 5 appears twice");
  sampling.logit_bias = {{5, 101.0f}};
  EXPECT_ERROR_NAMES(validate_sampling_params(sampling), "logit_bias");
  const std::unique_ptr<Engine> engine = open_engine(1);
  sampling.logit_bias = {{engine->config().vocab_size, 1.0f}};
  EXPECT_ERROR_NAMES(engine->add_sequence(sampling), "logit_bias: token id");
}

TEST(LogitPenalties, GreedyUnderPenaltiesMatchesTheOracleWholeAndInChunks) {
  const std::unique_ptr<Engine> engine = open_engine(2);
  const std::vector<int32_t> prompt = repeating_prompt();
  const SamplingParams sampling = strongly_penalised();
  const std::vector<int32_t> expected = oracle_penalised_greedy(*engine, prompt, sampling, 20);
  const auto forced = std::count(expected.begin(), expected.end(), 321);
  EXPECT_GT(forced, 1) << "the bias should win at first";
  EXPECT_LT(forced, 20) << "the penalties should win later";
  EXPECT_EQ(penalised_greedy(*engine, prompt, sampling, 20), expected);
  EXPECT_EQ(penalised_greedy(*engine, prompt, sampling, 20, 7), expected);
  // The second and third runs took the prompt's full blocks from the prefix cache: those tokens
  // count as prompt all the same.
  EXPECT_GT(engine->kv_blocks().hit_tokens(), 0u);
}

TEST(LogitPenalties, LogitBiasForcesAndForbidsTokens) {
  const std::unique_ptr<Engine> engine = open_engine(1);
  const std::vector<int32_t> prompt = repeating_prompt();
  const std::vector<int32_t> plain = penalised_greedy(*engine, prompt, SamplingParams{}, 6);
  SamplingParams forced;
  forced.logit_bias = {{321, 100.0f}};
  EXPECT_EQ(penalised_greedy(*engine, prompt, forced, 6), std::vector<int32_t>(6, 321));
  SamplingParams forbidden;
  forbidden.logit_bias = {{plain[0], -100.0f}};
  const std::vector<int32_t> without = penalised_greedy(*engine, prompt, forbidden, 6);
  EXPECT_EQ(std::count(without.begin(), without.end(), plain[0]), 0);
  EXPECT_EQ(without, oracle_penalised_greedy(*engine, prompt, forbidden, 6));
  // Log-probabilities stay those of the raw logits, as vLLM reports them by default.
  forced.logprobs = 0;
  const auto [token, logprob] = first_token_and_logprob(*engine, prompt, forced);
  EXPECT_EQ(token, 321);
  EXPECT_NEAR(logprob, raw_logprob(*engine, prompt, 321), 1e-4);
  EXPECT_LT(logprob, -1.0) << "the biased logit's, not the raw one's";
}

// Transformers' generate(repetition_penalty=1.3) on the same checkpoint and prompts, greedy, 24
// tokens (scripts/reference/penalty_reference.py wrote repetition_penalty.json).
TEST(LogitPenalties, RepetitionPenaltyMatchesTransformers) {
  std::ifstream file(kFixture / "repetition_penalty.json");
  ASSERT_TRUE(file) << "missing " << (kFixture / "repetition_penalty.json");
  const nlohmann::json reference = nlohmann::json::parse(file);
  std::ifstream plain_file(kFixture / "reference.json");
  const nlohmann::json plain = nlohmann::json::parse(plain_file);
  const Tokenizer tokenizer = Tokenizer::from_dir(kFixture);
  const std::unique_ptr<Engine> engine = open_engine(1);
  GenerationOptions options;
  options.max_new_tokens = reference["max_new_tokens"];
  options.sampling.repetition_penalty = reference["repetition_penalty"];
  size_t changed = 0;
  for (size_t i = 0; i < reference["prompts"].size(); ++i) {
    const nlohmann::json& prompt = reference["prompts"][i];
    const std::vector<int32_t> expected = prompt["greedy_ids"];
    EXPECT_EQ(generate(*engine, tokenizer, {prompt["prompt_ids"].get<std::vector<int32_t>>()}, options)[0].output_ids, expected)
        << "prompt " << i;
    changed += expected != plain["prompts"][i]["greedy_ids"].get<std::vector<int32_t>>() ? 1 : 0;
  }
  EXPECT_GT(changed, 0u) << "the penalty changed none of Transformers' continuations: the test would judge nothing";
}

// A preempted sequence comes back with its output among the prefilled tokens; told where its prompt
// ends, the engine still counts that output as output (taken for prompt, it would be penalised
// differently).
TEST(LogitPenalties, ARecomputedSequenceKeepsCountingItsOutput) {
  const std::unique_ptr<Engine> engine = open_engine(1);
  const std::vector<int32_t> prompt = repeating_prompt();
  const SamplingParams sampling = strongly_penalised();
  const std::vector<int32_t> whole = penalised_greedy(*engine, prompt, sampling, 14);
  std::vector<int32_t> prefill = prompt;
  prefill.insert(prefill.end(), whole.begin(), whole.begin() + 6);
  auto resume = [&](int64_t prompt_length) {
    const int id = engine->add_sequence(sampling, prompt_length);
    std::vector<int32_t> resumed = {engine->step(std::vector<SequenceChunk>{{id, prefill, true}}).at(0)};
    while (resumed.size() < 8) {
      const std::vector<int32_t> next = {resumed.back()};
      resumed.push_back(engine->step(std::vector<SequenceChunk>{{id, next, true}}).at(0));
    }
    engine->remove_sequence(id);
    return resumed;
  };
  const std::vector<int32_t> rest(whole.begin() + 6, whole.end());
  EXPECT_EQ(resume(int64_t(prompt.size())), rest);
  EXPECT_NE(resume(-1), rest) << "taking the output for prompt should have changed the tokens";
}

// The followers get each row's penalties in the step message and sample the same tokens.
TEST(LogitPenalties, TwoRankThreadsPenaliseAsOneRank) {
  const std::unique_ptr<Engine> single = open_engine(1);
  const std::unique_ptr<Engine> parallel = open_engine(1, 2);
  SamplingParams sampling = strongly_penalised();
  sampling.logit_bias.push_back({100, -3.0f});
  const std::vector<int32_t> prompt = repeating_prompt();
  EXPECT_EQ(penalised_greedy(*parallel, prompt, sampling, 12), penalised_greedy(*single, prompt, sampling, 12));
}

}  // namespace
}  // namespace shardlm
