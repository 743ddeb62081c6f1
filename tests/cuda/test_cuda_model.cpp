// The CUDA model (bf16) against the CPU model (f32 compute, itself held to Transformers' logits
// within 1e-4) on every fixture checkpoint, both over the weights the GPU holds (f32 checkpoints
// rounded to bf16 for the CPU: bf16_rounded_checkpoint.h says why): prefill logits within bf16
// tolerance, and, teacher-forced along Transformers' greedy continuation, the decode path (CUDA
// graphs, split-K attention) choosing the CPU's token wherever the CPU logits do not call it a near
// tie.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <memory>

#include "../unit/logit_comparison.h"
#include "../unit/model_fixtures.h"
#include "bf16_rounded_checkpoint.h"
#include "backend/cuda/cuda_llama_model.h"
#include "cuda_test_support.h"
#include "model/llama_model.h"
#include "ops/sampler.h"

namespace shardlm {
namespace {

namespace fs = std::filesystem;

class CudaModelFixture : public ::testing::TestWithParam<std::string> {};

TEST_P(CudaModelFixture, MatchesCpuModelWithinBf16Tolerance) {
  SKIP_WITHOUT_CUDA_DEVICE();
  const fs::path dir = fs::path(SHARDLM_FIXTURES_DIR) / "models" / GetParam();
  std::ifstream in(dir / "reference.json");
  const nlohmann::json reference = nlohmann::json::parse(in);
  const std::filesystem::path rounded = test::bf16_rounded_copy(dir);
  const LlamaModel cpu_model = LlamaModel::load(rounded);
  const auto checkpoint = std::make_shared<const Checkpoint>(Checkpoint::open(dir));
  cuda::CudaModelOptions options;
  options.max_sequences = 1;
  options.max_seq_len = 128;
  options.max_rows = 64;  // the longest prompt is chunked, exercising chunked prefill
  cuda::CudaLlamaModel gpu_model(cpu_model.config(), checkpoint, options);
  const size_t vocab = size_t(cpu_model.config().vocab_size);

  for (const nlohmann::json& prompt : reference["prompts"]) {
    const std::vector<int32_t> prompt_ids = prompt["prompt_ids"];
    const std::vector<int32_t> greedy_ids = prompt["greedy_ids"];
    KvCache cache = cpu_model.make_whole_cache(1, int64_t(prompt_ids.size() + greedy_ids.size()));
    std::vector<TokenRow> rows;
    for (size_t i = 0; i < prompt_ids.size(); ++i) rows.push_back({0, int64_t(i), prompt_ids[i], i + 1 == prompt_ids.size()});
    const std::vector<float> cpu_logits = cpu_model.forward(rows, cache);
    const std::vector<float> gpu_logits = gpu_model.forward_logits(rows);
    ASSERT_EQ(gpu_logits.size(), vocab);
    EXPECT_LT(relative_l2_error(gpu_logits, cpu_logits), 3e-2) << "prefill of " << prompt_ids.size() << " tokens";

    // Teacher-forced decode: feed the reference tokens one by one through the graph path.
    std::vector<float> step_logits = cpu_logits;
    const std::vector<int32_t> first_choice = gpu_model.forward_sample(rows, SamplingParams{});
    int32_t gpu_choice = first_choice.at(0);
    int decided = 0;
    for (size_t step = 0; step < greedy_ids.size(); ++step) {
      if (!near_tie(step_logits)) {  // bf16 must agree
        ++decided;
        EXPECT_EQ(gpu_choice, argmax(step_logits)) << "step " << step;
      }
      const TokenRow next{0, int64_t(prompt_ids.size() + step), greedy_ids[step], true};
      step_logits = cpu_model.forward(std::span<const TokenRow>(&next, 1), cache);
      gpu_choice = gpu_model.forward_sample(std::span<const TokenRow>(&next, 1), SamplingParams{}).at(0);
    }
    // A third of the steps at least must be judged. Tiny random MoE models have flat logits: the
    // mixtral-moe-f32 fixture of 8e830ea judges 12 of its 24 steps (its GPU choices all agreed).
    EXPECT_GE(decided, int(greedy_ids.size()) / 3) << "too many near ties to judge";
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, CudaModelFixture, ::testing::ValuesIn(model_fixture_names()), model_fixture_test_name);

// The first fixture on the CPU (with a cache of whole sequences) and on the GPU, set up alike.
struct CpuAndGpu {
  LlamaModel cpu;
  KvCache cache;
  std::unique_ptr<cuda::CudaLlamaModel> gpu;
};

CpuAndGpu open_cpu_and_gpu(int sequences, int64_t length, int max_rows) {
  const fs::path dir = fs::path(SHARDLM_FIXTURES_DIR) / "models" / model_fixture_names().front();
  LlamaModel cpu = LlamaModel::load(dir);
  KvCache cache = cpu.make_whole_cache(sequences, length);
  cuda::CudaModelOptions options;
  options.max_sequences = sequences;
  options.max_seq_len = length;
  options.max_rows = max_rows;
  auto gpu = std::make_unique<cuda::CudaLlamaModel>(cpu.config(), std::make_shared<const Checkpoint>(Checkpoint::open(dir)),
                                                    options);
  return {std::move(cpu), std::move(cache), std::move(gpu)};
}

// A decode step with more rows (sequences) than a pass holds runs in chunks, as a long prompt does.
// It once ran as one pass and wrote its rows past the staged inputs and the workspace: garbage
// positions, KV writes out of bounds (`shardlm bench --batch 17 --prompt-len 16` crashed).
TEST(CudaModel, DecodeStepWiderThanAPassRunsInChunks) {
  SKIP_WITHOUT_CUDA_DEVICE();
  constexpr int kSequences = 8;
  constexpr int64_t kLength = 16;
  CpuAndGpu models = open_cpu_and_gpu(kSequences, kLength, /*max_rows=*/3);  // fewer than a decode step's rows
  const LlamaModel& cpu_model = models.cpu;
  cuda::CudaLlamaModel& gpu_model = *models.gpu;
  KvCache& cache = models.cache;
  const size_t vocab = size_t(cpu_model.config().vocab_size);

  std::vector<TokenRow> rows;
  for (int s = 0; s < kSequences; ++s)
    for (int64_t i = 0; i < 3; ++i) rows.push_back({s, i, int32_t((s * 37 + i * 11 + 5) % int64_t(vocab)), i == 2});
  int decided = 0;
  for (int step = 0; step < 6; ++step) {
    const std::vector<float> cpu_logits = cpu_model.forward(rows, cache);
    const std::vector<int32_t> gpu_tokens = gpu_model.forward_sample(rows, SamplingParams{});
    ASSERT_EQ(gpu_tokens.size(), size_t(kSequences));
    std::vector<TokenRow> next;
    for (int s = 0; s < kSequences; ++s) {
      const std::span<const float> logits(cpu_logits.data() + size_t(s) * vocab, vocab);
      const int32_t cpu_token = int32_t(std::max_element(logits.begin(), logits.end()) - logits.begin());
      if (!near_tie(logits)) {
        ++decided;
        EXPECT_EQ(gpu_tokens[size_t(s)], cpu_token) << "sequence " << s << ", step " << step;
      }
      next.push_back({s, 3 + step, cpu_token, true});  // both models follow the CPU's choice
    }
    rows = std::move(next);
  }
  EXPECT_GT(decided, 6 * kSequences / 2) << "too many near ties to judge";
}

// A serving step: decode rows of some sequences beside prompt chunks of others (one longer than a
// tensor-core tile), in one pass; the chunks take the tensor-core kernel and the decode rows the
// split kernel, each for its own rows.
TEST(CudaModel, APassMixingDecodeRowsAndPromptChunksMatchesTheCpu) {
  SKIP_WITHOUT_CUDA_DEVICE();
  CpuAndGpu models = open_cpu_and_gpu(/*sequences=*/4, /*length=*/96, /*max_rows=*/128);
  const LlamaModel& cpu_model = models.cpu;
  cuda::CudaLlamaModel& gpu_model = *models.gpu;
  KvCache& cache = models.cache;
  const int64_t vocab = cpu_model.config().vocab_size;
  auto prompt = [&](std::vector<TokenRow>& rows, int sequence, int64_t first, int64_t count) {
    for (int64_t i = 0; i < count; ++i)
      rows.push_back({sequence, first + i, int32_t((sequence * 31 + (first + i) * 7 + 3) % vocab), i + 1 == count});
  };
  std::vector<TokenRow> first_pass, mixed_pass;
  prompt(first_pass, 0, 0, 5);
  prompt(first_pass, 1, 0, 3);
  prompt(mixed_pass, 0, 5, 1);   // decode row
  prompt(mixed_pass, 2, 0, 70);  // two tiles
  prompt(mixed_pass, 1, 3, 1);   // decode row
  prompt(mixed_pass, 3, 0, 2);   // a short chunk
  int decided = 0;
  for (const std::vector<TokenRow>* rows : {&first_pass, &mixed_pass}) {
    const std::vector<float> cpu_logits = cpu_model.forward(*rows, cache);
    const std::vector<int32_t> gpu_tokens = gpu_model.forward_sample(
        *rows, std::vector<SamplingParams>(cpu_logits.size() / size_t(vocab)));
    ASSERT_EQ(gpu_tokens.size() * size_t(vocab), cpu_logits.size());
    for (size_t r = 0; r < gpu_tokens.size(); ++r) {
      const std::span<const float> logits(cpu_logits.data() + r * size_t(vocab), size_t(vocab));
      if (near_tie(logits)) continue;
      ++decided;
      EXPECT_EQ(gpu_tokens[r], int32_t(std::max_element(logits.begin(), logits.end()) - logits.begin())) << "row " << r;
    }
  }
  EXPECT_GE(decided, 4) << "too many near ties to judge";
}

// Rows that score the prompt's next token (echo with logprobs) want logits without sampling, so a
// prompt chunk may want more logit rows than the logits buffer holds (one per sequence): the pass
// splits, and each scored row reports its own token's log-probability.
TEST(CudaModel, ScoredPromptRowsBeyondTheLogitsBufferReportTheirTokens) {
  SKIP_WITHOUT_CUDA_DEVICE();
  CpuAndGpu models = open_cpu_and_gpu(/*sequences=*/2, /*length=*/64, /*max_rows=*/128);
  const int64_t vocab = models.cpu.config().vocab_size;
  std::vector<TokenRow> rows;
  for (int64_t i = 0; i < 20; ++i) rows.push_back({0, i, int32_t((i * 37 + 5) % vocab), true});
  for (size_t i = 0; i + 1 < rows.size(); ++i) rows[i].scored_token = rows[i + 1].token;
  const std::vector<float> cpu_logits = models.cpu.forward(rows, models.cache);
  SamplingParams sampling;
  sampling.logprobs = 2;
  const std::vector<int32_t> tokens = models.gpu->forward_sample(rows, std::vector<SamplingParams>(rows.size(), sampling));
  ASSERT_EQ(tokens.size(), rows.size());
  ASSERT_EQ(models.gpu->last_logprobs().size(), rows.size());
  for (size_t i = 0; i + 1 < rows.size(); ++i) {
    EXPECT_EQ(tokens[i], rows[i].scored_token) << "row " << i;
    const std::span<const float> logits(cpu_logits.data() + i * size_t(vocab), size_t(vocab));
    const float spread = *std::max_element(logits.begin(), logits.end()) - *std::min_element(logits.begin(), logits.end());
    const SampledLogprobs& reported = models.gpu->last_logprobs()[i].value();
    EXPECT_NEAR(reported.logprob, log_softmax_at(logits, rows[i].scored_token), 0.02 * spread) << "row " << i;
    EXPECT_EQ(reported.top.size(), 2u);
  }
}

}  // namespace
}  // namespace shardlm
