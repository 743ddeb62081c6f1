// The Engine API as the server will drive it: sequences join and leave between steps, a step mixes
// prompt chunks with decoding sequences, and the tokens equal those of each sequence run alone;
// tensor-parallel ranks (threads) follow the leader's steps and give the same tokens as one rank.
// Prompt tokens scored in prefill chunks have the log-probabilities of their positions' logits,
// Transformers' greedy tokens scored so are each position's likeliest. Bad steps are refused by
// name before any rank starts them.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <memory>
#include <span>
#include <vector>

#include "engine/engine.h"
#include "error_message.h"
#include "logit_comparison.h"
#include "model_fixtures.h"

namespace shardlm {
namespace {

namespace fs = std::filesystem;

const fs::path kFixture = fs::path(SHARDLM_FIXTURES_DIR) / "models" / "llama-gqa-llama3rope-f32";

std::unique_ptr<Engine> open_engine(int max_sequences, int tp = 1) {
  EngineOptions options;
  options.model_dir = kFixture;
  options.max_sequences = max_sequences;
  options.max_seq_len = 64;
  options.tp = tp;
  return Engine::open(options);
}

std::vector<int32_t> prompt(int length, int salt) {
  std::vector<int32_t> tokens;
  for (int i = 0; i < length; ++i) tokens.push_back((i * 37 + salt * 11 + 5) % 600);
  return tokens;
}

// Greedy: the whole prompt in one step, then n tokens one step each.
std::vector<int32_t> greedy_alone(Engine& engine, const std::vector<int32_t>& tokens, int n) {
  const int id = engine.add_sequence(SamplingParams{});
  std::vector<int32_t> out;
  std::vector<int32_t> input = tokens;
  for (int i = 0; i < n; ++i) {
    out.push_back(engine.step(std::vector<SequenceChunk>{{id, input, true}}).at(0));
    input = {out.back()};
  }
  engine.remove_sequence(id);
  return out;
}

TEST(Engine, RaggedStepsOfPromptChunksAndDecodesMatchEachSequenceAlone) {
  const std::unique_ptr<Engine> engine = open_engine(2);
  const std::vector<int32_t> first = prompt(9, 1), second = prompt(14, 2);
  const std::vector<int32_t> first_alone = greedy_alone(*engine, first, 6);
  const std::vector<int32_t> second_alone = greedy_alone(*engine, second, 6);

  // The first sequence decodes while the second arrives and prefills in two chunks beside it.
  const int a = engine->add_sequence(SamplingParams{});
  std::vector<int32_t> a_out = engine->step(std::vector<SequenceChunk>{{a, first, true}});
  const int b = engine->add_sequence(SamplingParams{});
  const std::vector<int32_t> b_head(second.begin(), second.begin() + 5), b_tail(second.begin() + 5, second.end());
  std::vector<int32_t> a_next = {a_out.back()};
  std::vector<int32_t> tokens = engine->step(std::vector<SequenceChunk>{{a, a_next, true}, {b, b_head, false}});
  ASSERT_EQ(tokens.size(), 1u);
  a_out.push_back(tokens[0]);
  a_next = {a_out.back()};
  tokens = engine->step(std::vector<SequenceChunk>{{b, b_tail, true}, {a, a_next, true}});
  ASSERT_EQ(tokens.size(), 2u);
  std::vector<int32_t> b_out = {tokens[0]};
  a_out.push_back(tokens[1]);
  EXPECT_EQ(engine->length(b), int64_t(second.size()));
  while (b_out.size() < 6) {
    std::vector<SequenceChunk> chunks;
    const std::vector<int32_t> b_next = {b_out.back()};
    a_next = {a_out.back()};
    chunks.push_back({b, b_next, true});
    if (a_out.size() < 6) chunks.push_back({a, a_next, true});
    tokens = engine->step(chunks);
    b_out.push_back(tokens[0]);
    if (tokens.size() > 1) a_out.push_back(tokens[1]);
  }
  EXPECT_EQ(a_out, first_alone);
  EXPECT_EQ(b_out, second_alone);
}

TEST(Engine, TwoRankThreadsFollowTheLeaderAndMatchOneRank) {
  const std::vector<int32_t> tokens = prompt(12, 3);
  const std::unique_ptr<Engine> single = open_engine(1);
  const std::unique_ptr<Engine> parallel = open_engine(1, 2);
  EXPECT_EQ(greedy_alone(*parallel, tokens, 8), greedy_alone(*single, tokens, 8));
  // Logits too, through the same ranks.
  const int id = parallel->add_sequence(SamplingParams{});
  const std::vector<float> logits = parallel->step_logits(std::vector<SequenceChunk>{{id, tokens, true}});
  EXPECT_EQ(logits.size(), size_t(parallel->config().vocab_size));
  parallel->remove_sequence(id);
  // And prompt log-probabilities: the followers run the scored rows the leader reports.
  SamplingParams sampling;
  sampling.logprobs = 1;
  const std::span<const int32_t> next = std::span(tokens).subspan(1);
  std::vector<std::vector<SampledLogprobs>> scored;
  for (Engine* engine : {single.get(), parallel.get()}) {
    const int sequence = engine->add_sequence(sampling);
    engine->step(std::vector<SequenceChunk>{{sequence, tokens, true, next}});
    scored.push_back(engine->last_prompt_logprobs().at(0));
    engine->remove_sequence(sequence);
  }
  ASSERT_EQ(scored[1].size(), tokens.size() - 1);
  for (size_t i = 0; i < scored[0].size(); ++i) {
    EXPECT_NEAR(scored[1][i].logprob, scored[0][i].logprob, 1e-4) << "position " << i;
    EXPECT_EQ(scored[1][i].top.at(0).token, scored[0][i].top.at(0).token) << "position " << i;
  }
}

TEST(Engine, PromptTokensScoredInChunksHaveTheirPositionsLogProbabilities) {
  // A prompt followed by Transformers' 24 greedy tokens for it: scored as one prompt, each greedy
  // token must be its position's likeliest, and the first one's log-probability is that of
  // Transformers' logits after the prompt.
  const nlohmann::json reference = nlohmann::json::parse(std::ifstream(kFixture / "reference.json"));
  const nlohmann::json& fixture = reference.at("prompts").at(1);
  const std::vector<int32_t> prompt_ids = fixture.at("prompt_ids"), greedy_ids = fixture.at("greedy_ids");
  const std::vector<float> last_logits = fixture.at("last_logits");
  std::vector<int32_t> tokens = prompt_ids;
  tokens.insert(tokens.end(), greedy_ids.begin(), greedy_ids.end() - 1);

  const std::unique_ptr<Engine> engine = open_engine(2);
  SamplingParams sampling;
  sampling.logprobs = 3;
  // Alone, one row per step: each position's logits from the decode path.
  const int alone = engine->add_sequence(sampling);
  std::vector<std::vector<float>> position_logits;
  for (int32_t token : tokens) position_logits.push_back(engine->step_logits(std::vector<SequenceChunk>{{alone, std::span(&token, 1), true}}));
  engine->remove_sequence(alone);

  // Scored in prefill chunks of 7, 16 and the rest, beside another sequence's prompt.
  const int scored = engine->add_sequence(sampling);
  const int other = engine->add_sequence(SamplingParams{});
  const std::vector<int32_t> other_prompt = prompt(11, 4);
  std::vector<SampledLogprobs> logprobs;
  size_t done = 0;
  for (const size_t length : {size_t(7), size_t(16), tokens.size() - 23}) {
    const bool last = done + length == tokens.size();
    const std::span<const int32_t> chunk = std::span(tokens).subspan(done, length);
    const std::span<const int32_t> next = std::span(tokens).subspan(done + 1, last ? length - 1 : length);
    std::vector<SequenceChunk> chunks = {{scored, chunk, last, next}};
    if (done == 0) chunks.push_back({other, other_prompt, true});
    const std::vector<int32_t> sampled = engine->step(chunks);
    EXPECT_EQ(sampled.size(), size_t(last) + (done == 0 ? 1 : 0));
    ASSERT_EQ(engine->last_prompt_logprobs().size(), chunks.size());
    const std::vector<SampledLogprobs>& chunk_logprobs = engine->last_prompt_logprobs()[0];
    ASSERT_EQ(chunk_logprobs.size(), next.size());
    logprobs.insert(logprobs.end(), chunk_logprobs.begin(), chunk_logprobs.end());
    if (done == 0) EXPECT_TRUE(engine->last_prompt_logprobs()[1].empty());
    done += length;
  }
  ASSERT_EQ(logprobs.size(), tokens.size() - 1);
  for (size_t i = 0; i < logprobs.size(); ++i) {
    EXPECT_NEAR(logprobs[i].logprob, log_softmax_at(position_logits[i], tokens[i + 1]), 1e-5) << "position " << i;
    ASSERT_EQ(logprobs[i].top.size(), 3u);
    EXPECT_GE(logprobs[i].top[0].logprob, logprobs[i].logprob);
    if (i + 1 >= prompt_ids.size()) EXPECT_EQ(logprobs[i].top[0].token, tokens[i + 1]) << "greedy token at " << i;
  }
  const size_t first_greedy = prompt_ids.size() - 1;
  EXPECT_NEAR(logprobs[first_greedy].logprob, log_softmax_at(last_logits, greedy_ids[0]), 1e-4);
}

TEST(Engine, BadStepsAreRefusedByName) {
  const std::unique_ptr<Engine> engine = open_engine(1);
  const std::vector<int32_t> tokens = {1, 2, 3};
  EXPECT_ERROR_NAMES(engine->step(std::vector<SequenceChunk>{{0, tokens, true}}), "sequence 0 is not running");
  const int id = engine->add_sequence(SamplingParams{});
  EXPECT_ERROR_NAMES(engine->add_sequence(SamplingParams{}), "all 1 sequence slots are in use");
  EXPECT_ERROR_NAMES(engine->add_sequence(SamplingParams{-1.0f}), "temperature");
  EXPECT_ERROR_NAMES(engine->step(std::vector<SequenceChunk>{{id, tokens, true}, {id, tokens, true}}),
                     "sequence 0 appears twice");
  const std::vector<int32_t> outside = {1, 612};
  EXPECT_ERROR_NAMES(engine->step(std::vector<SequenceChunk>{{id, outside, true}}), "token id 612",
                     "vocab_size 612");
  const std::vector<int32_t> too_long(65, 1);
  EXPECT_ERROR_NAMES(engine->step(std::vector<SequenceChunk>{{id, too_long, true}}), "would hold 65 tokens",
                     "64 the engine was opened for");
  const std::vector<int32_t> next = {2, 3, 4};
  EXPECT_ERROR_NAMES(engine->step(std::vector<SequenceChunk>{{id, tokens, true, next}}), "scores 3 tokens",
                     "at most one fewer");
  EXPECT_ERROR_NAMES(engine->step(std::vector<SequenceChunk>{{id, tokens, false, next}}),
                     "ask for no log-probabilities");
  // A refused step changes nothing: the sequence still starts at position 0.
  EXPECT_EQ(engine->length(id), 0);
  EXPECT_EQ(engine->step(std::vector<SequenceChunk>{{id, tokens, true}}).size(), 1u);
  EXPECT_EQ(engine->length(id), 3);
  EXPECT_ERROR_NAMES(engine->follow(), "call step(), not follow()");
}

TEST(Engine, OpeningRefusesImpossibleSetUpsByName) {
  EngineOptions options;
  options.model_dir = kFixture;
  options.tp = 3;
  EXPECT_ERROR_NAMES(Engine::open(options), "tp=3");  // 8 query heads do not split over 3 ranks
  options.tp = 1;
  options.max_sequences = 0;
  EXPECT_ERROR_NAMES(Engine::open(options), "--batch must be >= 1");
  options.max_sequences = 1;
  options.max_seq_len = 100000;
  EXPECT_ERROR_NAMES(Engine::open(options), "max_position_embeddings 512");
  options.max_seq_len = 0;
  options.random_weights = ModelConfig::from_dir(kFixture);  // random weights need one GPU
  EXPECT_ERROR_NAMES(Engine::open(options), "random weights run on one GPU");
  options.random_weights.reset();
  // Where each GPU rank runs: one entry per rank, and only for GPU ranks (checked before any
  // device is touched, so this runs without one).
  options.cuda_devices = {0, 0};
  EXPECT_ERROR_NAMES(Engine::open(options), "--cuda-devices says which GPU each rank or map device runs on: it needs --device cuda");
  options.device = parse_device("cuda:0");
  options.tp = 4;
  EXPECT_ERROR_NAMES(Engine::open(options), "--cuda-devices has 2 entries for 4 tensor-parallel ranks");
}

}  // namespace
}  // namespace shardlm
