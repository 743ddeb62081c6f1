// Mixture-of-experts layers on the CUDA model, against the CPU model on the same tiny checkpoints
// (Mixtral, Qwen2-MoE with its gated shared expert, Qwen3-MoE with a dense layer): prompt logits
// within bf16 tolerance (a prompt takes the GEMM path), the same greedy tokens through decode steps
// (GEMVs, replayed as a CUDA graph, two sequences per step) wherever the CPU's logits are not a
// near tie; experts kept in cpu memory (--cpu-moe); a whole MoE layer offloaded to cpu memory
// (streamed, or run by the CPU); and 2 ranks' prompt logits (tensor-parallel experts, or expert
// parallelism) against the whole model on this GPU. With identical experts the choice of experts
// cannot matter, so those logits are held tighter: what is left is the experts' arithmetic and the
// combine. The GPU routes on bf16 rows, the CPU on f32: should a test fail,
// look for a routing choice that flipped before suspecting the kernels.
#include <gtest/gtest.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "../unit/logit_comparison.h"
#include "../unit/tiny_moe_model.h"
#include "backend/cuda/cuda_llama_model.h"
#include "cuda_test_support.h"
#include "model/llama_model.h"
#include "ops/sampler.h"
#include "parallel/comm/thread_group.h"
#include "parallel/cuda/host_staged_communicator.h"
#include "plan/device_map/offload_policy.h"
#include "plan/device_map/planner.h"
#include "plan/tp_plan.h"
#include "plan/tp_plan_source.h"

namespace shardlm {
namespace {

namespace fs = std::filesystem;

struct Variant {
  std::string name;
  test::TinyMoe model;
};

std::vector<Variant> variants() {
  test::TinyMoe mixtral;
  mixtral.architecture = "MixtralForCausalLM";
  mixtral.layout = test::ExpertLayout::MIXTRAL_PER_EXPERT;
  test::TinyMoe qwen2;
  qwen2.architecture = "Qwen2MoeForCausalLM";
  qwen2.shared_ff = 24;
  qwen2.norm_topk_prob = false;
  test::TinyMoe qwen3;
  qwen3.mlp_only_layers = {1};
  qwen3.layout = test::ExpertLayout::FUSED;
  return {{"mixtral", mixtral}, {"qwen2_moe_shared", qwen2}, {"qwen3_moe_dense_layer", qwen3}};
}

cuda::CudaModelOptions gpu_options() {
  cuda::CudaModelOptions options;
  options.max_sequences = 2;
  options.max_seq_len = 64;
  options.max_rows = 64;
  return options;
}

std::vector<TokenRow> prompt_rows(int sequence, int length, int vocab) {
  std::vector<TokenRow> rows;
  for (int i = 0; i < length; ++i) rows.push_back({sequence, i, (i * 29 + sequence * 11 + 3) % vocab, i + 1 == length});
  return rows;
}

// Both prompts of the decode tests in one pass (GEMMs over 12 + 7 rows).
std::vector<TokenRow> two_prompts(int vocab) {
  std::vector<TokenRow> rows = prompt_rows(0, 12, vocab);
  for (const TokenRow& row : prompt_rows(1, 7, vocab)) rows.push_back(row);
  return rows;
}

// A tiny checkpoint written for one test.
struct TinyCheckpoint {
  ModelConfig config;
  std::shared_ptr<const Checkpoint> checkpoint;
};

TinyCheckpoint write_checkpoint(const test::TinyMoe& tiny, const std::string& name) {
  const fs::path dir = test::write_tiny_moe(tiny, name);
  return {ModelConfig::from_dir(dir), std::make_shared<const Checkpoint>(Checkpoint::open(dir))};
}

// The same checkpoint on the CPU (with a cache for two sequences) and on this GPU.
struct CpuAndGpu {
  LlamaModel cpu;
  KvCache cache;
  std::unique_ptr<cuda::CudaLlamaModel> gpu;
};

CpuAndGpu open_cpu_and_gpu(const test::TinyMoe& tiny, const std::string& name,
                           const cuda::CudaModelOptions& options = gpu_options()) {
  const TinyCheckpoint written = write_checkpoint(tiny, name);
  LlamaModel cpu(written.config, written.checkpoint);
  KvCache cache = cpu.make_whole_cache(2, 64);
  return {std::move(cpu), std::move(cache), std::make_unique<cuda::CudaLlamaModel>(written.config, written.checkpoint, options)};
}

// After two_prompts: both sequences decode `steps` tokens along the CPU's greedy choices (from
// `cpu_logits`, the prompts' last rows), and the GPU must choose alike wherever the CPU's logits are
// not a near tie. Returns how many choices were judged.
int expect_the_cpus_greedy_decode(CpuAndGpu& models, std::vector<float> cpu_logits, int vocab, int steps) {
  const size_t width = size_t(vocab);
  int64_t positions[2] = {12, 7};
  int decided = 0;
  for (int step = 0; step < steps; ++step) {
    std::vector<TokenRow> next;
    for (int s = 0; s < 2; ++s)
      next.push_back({s, positions[s]++, argmax(std::span<const float>(cpu_logits).subspan(size_t(s) * width, width)), true});
    const std::vector<int32_t> gpu_tokens = models.gpu->forward_sample(next, SamplingParams{});
    cpu_logits = models.cpu.forward(next, models.cache);
    for (int s = 0; s < 2; ++s) {
      const std::span<const float> logits = std::span<const float>(cpu_logits).subspan(size_t(s) * width, width);
      if (near_tie(logits)) continue;
      ++decided;
      EXPECT_EQ(gpu_tokens[size_t(s)], argmax(logits)) << "sequence " << s << ", step " << step;
    }
  }
  return decided;
}

class CudaMoeModel : public ::testing::TestWithParam<Variant> {};

TEST_P(CudaMoeModel, PromptAndDecodeMatchTheCpuModel) {
  SKIP_WITHOUT_CUDA_DEVICE();
  const test::TinyMoe& tiny = GetParam().model;
  CpuAndGpu models = open_cpu_and_gpu(tiny, "cuda-moe-" + GetParam().name);
  // Two prompts in one pass, then five decode steps of both sequences (the GPU replays a graph
  // from the second step on).
  const std::vector<TokenRow> rows = two_prompts(tiny.vocab);
  const std::vector<float> cpu_prompt = models.cpu.forward(rows, models.cache);
  const std::vector<float> gpu_prompt = models.gpu->forward_logits(rows);
  ASSERT_EQ(gpu_prompt.size(), cpu_prompt.size());
  EXPECT_LT(relative_l2_error(gpu_prompt, cpu_prompt), 5e-2);
  EXPECT_GE(expect_the_cpus_greedy_decode(models, cpu_prompt, tiny.vocab, 5), 5) << "too many near ties to judge";
}

TEST_P(CudaMoeModel, IdenticalExpertsGiveTheCpuLogitsWhicheverAreChosen) {
  SKIP_WITHOUT_CUDA_DEVICE();
  test::TinyMoe tiny = GetParam().model;
  tiny.identical_experts = true;
  tiny.norm_topk_prob = true;  // then any choice of experts sums to the one expert's output
  CpuAndGpu models = open_cpu_and_gpu(tiny, "cuda-moe-identical-" + GetParam().name);
  const std::vector<TokenRow> rows = prompt_rows(0, 16, tiny.vocab);
  EXPECT_LT(relative_l2_error(models.gpu->forward_logits(rows), models.cpu.forward(rows, models.cache)), 2e-2);
}

// --cpu-moe: the experts of layers 0 and 2 stay in cpu memory and the CPU runs the chosen ones,
// while attention, router and shared expert run on the GPU (and layer 1's MLP: experts for
// Mixtral and Qwen2-MoE, dense for Qwen3-MoE); two sequences decode, eagerly (the CPU's part cannot
// be captured in a graph).
TEST_P(CudaMoeModel, ExpertsInCpuMemoryMatchTheCpuModel) {
  SKIP_WITHOUT_CUDA_DEVICE();
  const test::TinyMoe& tiny = GetParam().model;
  cuda::CudaModelOptions options = gpu_options();
  LayerPlacement placement;
  placement.embed = placement.norm = placement.head = DeviceId::cuda(0);
  placement.layers.assign(size_t(tiny.layers), DeviceId::cuda(0));
  placement.experts_in_cpu = {true, false, true};
  options.placement = placement;
  CpuAndGpu models = open_cpu_and_gpu(tiny, "cuda-moe-cpu-experts-" + GetParam().name, options);
  const std::vector<TokenRow> rows = two_prompts(tiny.vocab);
  const std::vector<float> cpu_prompt = models.cpu.forward(rows, models.cache);
  EXPECT_LT(relative_l2_error(models.gpu->forward_logits(rows), cpu_prompt), 5e-2);
  EXPECT_GE(expect_the_cpus_greedy_decode(models, cpu_prompt, tiny.vocab, 4), 4) << "too many near ties to judge";
}

// A device map that places a whole MoE layer (layer 2, sparse in every variant) in cpu memory:
// streamed to the GPU for each step, or run there by the CPU (experts and all), against the same
// model whole on the GPU. Layer 0 keeps its experts in cpu memory too (--cpu-moe), which for the
// offloaded layer 2 changes nothing: its experts stay in its block.
TEST_P(CudaMoeModel, AnOffloadedLayerStreamedOrRunByTheCpuMatchesTheWholeModel) {
  SKIP_WITHOUT_CUDA_DEVICE();
  const test::TinyMoe& tiny = GetParam().model;
  const auto [config, checkpoint] = write_checkpoint(tiny, "cuda-moe-offload-" + GetParam().name);
  std::vector<TokenRow> rows = prompt_rows(0, 12, tiny.vocab);
  cuda::CudaLlamaModel whole(config, checkpoint, gpu_options());
  const std::vector<float> expected = whole.forward_logits(rows);
  const DeviceId gpu = DeviceId::cuda(0);
  for (const OffloadExec exec : {OffloadExec::STREAM, OffloadExec::CPU}) {
    SCOPED_TRACE(std::string("--offload-exec ") + std::string(offload_exec_name(exec)));
    cuda::CudaModelOptions options = gpu_options();
    options.placement = LayerPlacement{gpu, {gpu, gpu, DeviceId::cpu()}, gpu, gpu, gpu};
    options.placement->experts_in_cpu = {true, false, true};
    options.offload_exec = exec;
    cuda::CudaLlamaModel mapped(config, checkpoint, options);
    EXPECT_LT(relative_l2_error(mapped.forward_logits(rows), expected), 3e-2);
    EXPECT_GT(mapped.offload_report().speeds.offloaded_bytes, 0);
  }
}

// Two ranks on this GPU (collectives through the host) against the whole model: the experts split
// by tensor parallelism (--tp-plan auto) and whole experts over the ranks (expert parallelism).
TEST_P(CudaMoeModel, TwoRanksMatchTheWholeModel) {
  SKIP_WITHOUT_CUDA_DEVICE();
  const test::TinyMoe& tiny = GetParam().model;
  const auto [config, checkpoint] = write_checkpoint(tiny, "cuda-moe-tp-" + GetParam().name);
  const std::vector<TokenRow> rows = prompt_rows(0, 16, tiny.vocab);
  cuda::CudaLlamaModel whole(config, checkpoint, gpu_options());
  const std::vector<float> expected = whole.forward_logits(rows);
  for (const bool expert_parallel : {false, true}) {
    const TpPlan plan =
        resolve_tp_plan(config, weight_specs(*checkpoint), TpPlanSource::from_argument("auto", expert_parallel), 2);
    std::vector<std::vector<float>> per_rank(2);
    ThreadGroup::run(2, [&](Communicator& host) {
      cuda::HostStagedCommunicator staged(host);
      cuda::CudaModelOptions options = gpu_options();
      options.tensor_parallel = cuda::CudaTensorParallel{&plan, &staged};
      cuda::CudaLlamaModel rank_model(config, checkpoint, options);
      host.barrier();
      per_rank[size_t(host.rank())] = rank_model.forward_logits(rows);
      host.barrier();
    });
    EXPECT_LT(relative_l2_error(per_rank[0], expected), 3e-2) << (expert_parallel ? "expert parallel" : "tensor parallel");
    EXPECT_EQ(per_rank[1], per_rank[0]) << "every rank has the same logits";
  }
}

INSTANTIATE_TEST_SUITE_P(Architectures, CudaMoeModel, ::testing::ValuesIn(variants()),
                         [](const ::testing::TestParamInfo<Variant>& info) { return info.param.name; });

}  // namespace
}  // namespace shardlm
