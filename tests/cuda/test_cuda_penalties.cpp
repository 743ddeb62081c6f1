// Penalties and logit bias on a GPU, through the Engine: greedy under them matches the oracle
// (penalised_greedy.h) over the same GPU's raw logits, one sequence alone (a replayed decode graph)
// and beside an unpenalised one in the same steps, and a token's log-probability is the raw logits'.
#include <gtest/gtest.h>

#include <filesystem>
#include <memory>

#include "../unit/penalised_greedy.h"
#include "cuda_test_support.h"
#include "engine/engine.h"

namespace shardlm {
namespace {

std::unique_ptr<Engine> open_cuda_engine(int max_sequences) {
  EngineOptions options;
  options.model_dir = std::filesystem::path(SHARDLM_FIXTURES_DIR) / "models" / "llama-gqa-llama3rope-f32";
  options.device = parse_device("cuda:0");
  options.max_sequences = max_sequences;
  options.max_seq_len = 96;
  return Engine::open(options);
}

SamplingParams penalised() {
  SamplingParams sampling = strongly_penalised();
  sampling.logit_bias.push_back({100, -3.0f});
  return sampling;
}

// The oracle's logits come from prompt passes, the engine's from decode steps, which round bf16
// differently: the two are compared up to the first near tie of the oracle's penalised logits (one
// came at step 16 of 20 on an H100, where the GPU's tokens still equalled the CPU's in f32).
TEST(CudaPenalties, GreedyMatchesTheOracleOnTheSameGpu) {
  SKIP_WITHOUT_CUDA_DEVICE();
  const std::unique_ptr<Engine> engine = open_cuda_engine(2);
  const std::vector<int32_t> prompt = repeating_prompt();
  std::vector<float> margins;
  std::vector<int32_t> expected = oracle_penalised_greedy(*engine, prompt, penalised(), 20, &margins);
  const size_t decided = size_t(std::find_if(margins.begin(), margins.end(), [](float m) { return m < 0.1f; }) - margins.begin());
  expected.resize(decided);
  ASSERT_GE(decided, 8u) << "too few steps without a near tie to judge";
  EXPECT_GT(std::count(expected.begin(), expected.end(), 321), 1);
  for (size_t chunk : {size_t(0), size_t(9)}) {
    std::vector<int32_t> tokens = penalised_greedy(*engine, prompt, penalised(), 20, chunk);
    tokens.resize(decided);
    EXPECT_EQ(tokens, expected) << "prompt chunks of " << chunk;
  }
}

TEST(CudaPenalties, APenalisedRowBesideAPlainOneInTheSameSteps) {
  SKIP_WITHOUT_CUDA_DEVICE();
  const std::unique_ptr<Engine> engine = open_cuda_engine(2);
  const std::vector<int32_t> prompt = repeating_prompt();
  const std::vector<int32_t> penalised_alone = penalised_greedy(*engine, prompt, penalised(), 12);
  const std::vector<int32_t> plain_alone = penalised_greedy(*engine, prompt, SamplingParams{}, 12);
  ASSERT_NE(penalised_alone, plain_alone);
  const int a = engine->add_sequence(penalised()), b = engine->add_sequence(SamplingParams{});
  std::vector<int32_t> a_out, b_out;
  std::vector<int32_t> a_in = prompt, b_in = prompt;
  while (a_out.size() < 12) {
    const std::vector<int32_t> tokens = engine->step(std::vector<SequenceChunk>{{a, a_in, true}, {b, b_in, true}});
    a_out.push_back(tokens.at(0));
    b_out.push_back(tokens.at(1));
    a_in = {a_out.back()};
    b_in = {b_out.back()};
  }
  EXPECT_EQ(a_out, penalised_alone);
  EXPECT_EQ(b_out, plain_alone);
}

TEST(CudaPenalties, LogprobsAreOfTheRawLogits) {
  SKIP_WITHOUT_CUDA_DEVICE();
  const std::unique_ptr<Engine> engine = open_cuda_engine(1);
  const std::vector<int32_t> prompt = repeating_prompt();
  SamplingParams forced;
  forced.logit_bias = {{321, 100.0f}};
  forced.logprobs = 0;
  const auto [token, logprob] = first_token_and_logprob(*engine, prompt, forced);
  EXPECT_EQ(token, 321);
  EXPECT_NEAR(logprob, raw_logprob(*engine, prompt, 321), 1e-3);
  EXPECT_LT(logprob, -1.0);
}

}  // namespace
}  // namespace shardlm
