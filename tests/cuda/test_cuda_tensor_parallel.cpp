// Tensor parallelism on the CUDA model: 2 and 4 ranks (threads) against the whole model on one GPU,
// for every fixture architecture: prompt logits within bf16 tolerance (the partial sums are
// all-reduced in bf16, as Transformers does), the same greedy tokens through the decode path
// wherever the whole model's logits are not a near tie, and every rank with the same logits. The
// ranks share this machine's one GPU, so their collectives go through the host (NCCL refuses two
// ranks on one device) or, for small all-reduces, the one-shot peer kernel; the NCCL path is the
// same model code with another DeviceCommunicator.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <memory>
#include <optional>

#include "../unit/logit_comparison.h"
#include "../unit/model_fixtures.h"
#include "../unit/per_layer_plan.h"
#include "backend/cuda/cuda_llama_model.h"
#include "parallel/cuda/host_staged_communicator.h"
#include "parallel/cuda/peer_communicator.h"
#include "core/error.h"
#include "engine/engine.h"
#include "cuda_test_support.h"
#include "parallel/comm/thread_group.h"
#include "plan/tp_plan.h"

namespace shardlm {
namespace {

namespace fs = std::filesystem;

cuda::CudaModelOptions options() {
  cuda::CudaModelOptions options;
  options.max_sequences = 1;
  options.max_seq_len = 64;
  options.max_rows = 16;  // the 20-token prompt is chunked
  return options;
}

std::vector<TokenRow> prompt_rows() {
  std::vector<TokenRow> rows;
  for (int i = 0; i < 20; ++i) rows.push_back({0, i, (i * 53 + 7) % 500, i == 19});
  return rows;
}

struct RunResult {
  std::vector<float> prompt_logits;
  std::vector<int32_t> tokens;  // greedy decode, teacher-forced along `forced`
};

RunResult run_model(cuda::CudaLlamaModel& model, const std::vector<int32_t>& forced) {
  RunResult result;
  const std::vector<TokenRow> rows = prompt_rows();
  result.prompt_logits = model.forward_logits(rows);
  result.tokens.push_back(model.forward_sample(rows, SamplingParams{}).at(0));
  for (size_t step = 0; step < forced.size(); ++step) {
    const TokenRow next{0, int64_t(20 + step), forced[step], true};
    result.tokens.push_back(model.forward_sample(std::span<const TokenRow>(&next, 1), SamplingParams{}).at(0));
  }
  return result;
}

// tp ranks on this GPU against the whole model; with peer, decode's small all-reduces take the
// one-shot peer kernel (its ranks spin on each other, so compute-sanitizer, which runs one kernel at
// a time, can only check the host-staged runs).
void expect_ranks_match_one_gpu(const std::string& fixture, int tp, bool peer_all_reduce,
                                const TpPlanSource& source = TpPlanSource::auto_plan()) {
  const fs::path dir = fs::path(SHARDLM_FIXTURES_DIR) / "models" / fixture;
  const ModelConfig config = ModelConfig::from_dir(dir);
  const auto checkpoint = std::make_shared<const Checkpoint>(Checkpoint::open(dir));
  cuda::CudaLlamaModel whole(config, checkpoint, options());
  // The whole model's own greedy path, which every run is then forced along.
  RunResult reference = run_model(whole, {});
  std::vector<int32_t> forced = {reference.tokens[0]};
  std::vector<std::vector<float>> step_logits = {reference.prompt_logits};
  for (int step = 0; step < 8; ++step) {
    const TokenRow next{0, int64_t(20 + step), forced.back(), true};
    step_logits.push_back(whole.forward_logits(std::span<const TokenRow>(&next, 1)));
    forced.push_back(whole.forward_sample(std::span<const TokenRow>(&next, 1), SamplingParams{}).at(0));
  }
  forced.pop_back();
  reference = run_model(whole, forced);

  const TpPlan plan = resolve_tp_plan(config, weight_specs(*checkpoint), source, tp);
  std::vector<RunResult> per_rank(static_cast<size_t>(tp));
  ThreadGroup::run(tp, [&](Communicator& host) {
    cuda::HostStagedCommunicator staged(host);
    std::optional<cuda::PeerCommunicator> peer;
    if (peer_all_reduce) peer.emplace(host, 0, staged);
    cuda::CudaModelOptions rank_options = options();
    rank_options.tensor_parallel =
        cuda::CudaTensorParallel{&plan, peer ? static_cast<cuda::DeviceCommunicator*>(&*peer) : &staged};
    cuda::CudaLlamaModel rank_model(config, checkpoint, rank_options);
    // Loading frees pinned staging, which synchronises the shared GPU: no rank may be spinning in a
    // peer all-reduce for another that is still loading.
    host.barrier();
    per_rank[size_t(host.rank())] = run_model(rank_model, forced);
    host.barrier();
  });
  EXPECT_LT(relative_l2_error(per_rank[0].prompt_logits, reference.prompt_logits), 3e-2);
  for (size_t step = 0; step < reference.tokens.size(); ++step)
    if (!near_tie(step_logits[step])) EXPECT_EQ(per_rank[0].tokens[step], reference.tokens[step]) << "step " << step;
  for (int rank = 1; rank < tp; ++rank) {
    EXPECT_EQ(per_rank[size_t(rank)].prompt_logits, per_rank[0].prompt_logits) << "rank " << rank;
    EXPECT_EQ(per_rank[size_t(rank)].tokens, per_rank[0].tokens) << "rank " << rank;
  }
}

class CudaTensorParallelFixture : public ::testing::TestWithParam<std::string> {};

TEST_P(CudaTensorParallelFixture, TwoRanksThroughTheHostMatchOneGpu) {
  SKIP_WITHOUT_CUDA_DEVICE();
  expect_ranks_match_one_gpu(GetParam(), 2, false);
}

TEST_P(CudaTensorParallelFixture, FourRanksWithPeerAllReduceMatchOneGpu) {
  SKIP_WITHOUT_CUDA_DEVICE();
  expect_ranks_match_one_gpu(GetParam(), 4, true);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, CudaTensorParallelFixture, ::testing::ValuesIn(model_fixture_names()),
                         model_fixture_test_name);

TEST(CudaTensorParallel, RefusesRandomWeightsAndDeviceMaps) {
  SKIP_WITHOUT_CUDA_DEVICE();
  const fs::path dir = fs::path(SHARDLM_FIXTURES_DIR) / "models" / "qwen3-qknorm-f32";
  const ModelConfig config = ModelConfig::from_dir(dir);
  const auto checkpoint = std::make_shared<const Checkpoint>(Checkpoint::open(dir));
  const TpPlan plan = resolve_tp_plan(config, weight_specs(*checkpoint), TpPlanSource::auto_plan(), 2);
  ThreadGroup::run(1, [&](Communicator& host) {
    cuda::HostStagedCommunicator comm(host);
    cuda::CudaModelOptions tp_options = options();
    tp_options.tensor_parallel = cuda::CudaTensorParallel{&plan, &comm};
    EXPECT_THROW(cuda::CudaLlamaModel(config, 3, tp_options), Error);
    const DeviceId gpu = DeviceId::cuda(0);
    tp_options.placement = LayerPlacement{gpu, {gpu, gpu}, gpu, gpu, std::nullopt};
    EXPECT_THROW(cuda::CudaLlamaModel(config, checkpoint, tp_options), Error);
  });
}

// Every layer follows its own plan entries (the CPU ranks' per-layer plan, per_layer_plan.h): the
// layers' heads, widths, weight blocks and KV caches differ, and the ranks still match the whole
// model (as CPU ranks do: TensorParallel.PlanWhoseLayersDifferMatchesOneRank).
TEST(CudaTensorParallel, PlanWhoseLayersDifferMatchesOneGpu) {
  SKIP_WITHOUT_CUDA_DEVICE();
  expect_ranks_match_one_gpu("llama-gqa-llama3rope-f32", 2, false,
                             TpPlanSource::from_json(kPerLayerPlan, "per-layer.json"));
}

// The same through the Engine, as `shardlm serve --tp 2 --cuda-devices 0,0` opens it: two rank
// threads on this one GPU (their collectives through the host, since NCCL refuses them, and no
// graphs) against the whole model: a prompt, a step with the first sequence's next token beside a
// second sequence's prompt, then a decode step of both.
TEST(CudaTensorParallel, EngineRanksSharingOneGpuMatchOneRank) {
  SKIP_WITHOUT_CUDA_DEVICE();
  const auto open = [](int tp, std::vector<int> cuda_devices) {
    EngineOptions engine_options;
    engine_options.model_dir = fs::path(SHARDLM_FIXTURES_DIR) / "models" / "llama-gqa-llama3rope-f32";
    engine_options.device = parse_device("cuda:0");
    engine_options.max_sequences = 2;
    engine_options.max_seq_len = 64;
    engine_options.tp = tp;
    engine_options.cuda_devices = std::move(cuda_devices);
    return Engine::open(engine_options);
  };
  const std::unique_ptr<Engine> whole = open(1, {});
  const std::unique_ptr<Engine> ranks = open(2, {0, 0});
  std::vector<int32_t> prompt;
  for (const TokenRow& row : prompt_rows()) prompt.push_back(row.token);
  std::vector<std::vector<float>> logits;
  for (Engine* engine : {whole.get(), ranks.get()}) {
    const int first = engine->add_sequence(SamplingParams{});
    logits.push_back(engine->step_logits(std::vector<SequenceChunk>{{first, prompt, true}}));
    // A second sequence's prompt beside the first one's next token, then both decode.
    const int second = engine->add_sequence(SamplingParams{});
    const int32_t next = int32_t(std::max_element(logits.back().begin(), logits.back().end()) - logits.back().begin());
    const std::vector<int32_t> one = {next};
    const std::vector<int32_t> short_prompt(prompt.begin(), prompt.begin() + 7);
    logits.push_back(engine->step_logits(std::vector<SequenceChunk>{{first, one, true}, {second, short_prompt, true}}));
    const std::vector<int32_t> both = {3, 5};
    logits.push_back(engine->step_logits(
        std::vector<SequenceChunk>{{first, std::span(both).first(1), true}, {second, std::span(both).last(1), true}}));
    engine->remove_sequence(first);
    engine->remove_sequence(second);
  }
  ASSERT_EQ(logits.size(), 6u);  // three steps of the whole model, then the same three of the ranks
  ASSERT_EQ(logits[0].size(), size_t(whole->config().vocab_size));
  for (size_t step = 0; step < 3; ++step) {
    ASSERT_EQ(logits[3 + step].size(), logits[step].size()) << "step " << step;
    EXPECT_LT(relative_l2_error(logits[3 + step], logits[step]), 3e-2) << "step " << step;
  }
  // And a step that samples: the same greedy tokens wherever the whole model's are not a near tie.
  const std::vector<float> last_row(logits[1].end() - whole->config().vocab_size, logits[1].end());
  ASSERT_EQ(logits[1].size(), 2 * last_row.size());
  if (!near_tie(last_row)) {
    std::vector<std::vector<int32_t>> sampled;
    for (Engine* engine : {whole.get(), ranks.get()}) {
      const int id = engine->add_sequence(SamplingParams{});
      sampled.push_back(engine->step(std::vector<SequenceChunk>{{id, std::vector<int32_t>(prompt.begin(), prompt.begin() + 7), true}}));
      engine->remove_sequence(id);
    }
    EXPECT_EQ(sampled[1], sampled[0]);
  }
}

}  // namespace
}  // namespace shardlm
