// Device maps on a GPU: units placed on cpu and disk next to cuda:0, run with every
// --offload-exec, give the same logits and greedy tokens as the whole model on cuda:0. Streaming is
// the same bf16 arithmetic on the GPU (near-identical logits); the CPU backend computes the
// offloaded layers with f32 activations (bf16 tolerance). Under auto, prompts and continuations
// stream while single rows run on the CPU, so the offloaded layers' KV cache moves both ways.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>

#include "../unit/logit_comparison.h"
#include "backend/cuda/cuda_llama_model.h"
#include "core/error.h"
#include "cuda_test_support.h"

namespace shardlm {
namespace {

namespace fs = std::filesystem;

struct Layout {
  std::string fixture;
  LayerPlacement placement;
};

// qwen2 (3 layers, tied head): layer 0 on the GPU, layer 1 in RAM, layer 2 and the tied head on disk.
// llama (2 layers): the embedding on disk (looked up on the host), layer 0 in RAM, layer 1 and the
// head on the GPU.
std::vector<Layout> layouts() {
  const DeviceId gpu = DeviceId::cuda(0), cpu = DeviceId::cpu(), disk = DeviceId::disk();
  return {{"qwen2-bias-yarn-f32", {gpu, {gpu, cpu, disk}, disk, disk, gpu}},
          {"llama-gqa-llama3rope-f32", {disk, {cpu, gpu}, gpu, gpu, gpu}}};
}

fs::path fixture_dir(const std::string& fixture) { return fs::path(SHARDLM_FIXTURES_DIR) / "models" / fixture; }

std::shared_ptr<const Checkpoint> open(const std::string& fixture) {
  return std::make_shared<const Checkpoint>(Checkpoint::open(fixture_dir(fixture)));
}

cuda::CudaModelOptions base_options() {
  cuda::CudaModelOptions options;
  options.max_sequences = 1;
  options.max_seq_len = 64;
  options.max_rows = 32;
  // Streaming at 1 MB/s against a CPU assumed to do 2 MFLOP/s: for these f32 checkpoints (4 bytes
  // per parameter) the CPU wins below 4 rows, so under auto a prompt streams and a decode step runs
  // on the CPU (and keeps doing so: its measured time stays far below the streaming estimate).
  options.offload_speeds = OffloadSpeeds{0, 0, 1e-3, 1e6, 2e-3};
  return options;
}

// A prompt, three decode steps, an 8-token continuation, two more decode steps: logits compared at
// every step, and the sampled greedy token (the decode path) wherever it is not a near tie.
void expect_same_run(cuda::CudaLlamaModel& plain, cuda::CudaLlamaModel& mapped, double tolerance) {
  std::vector<TokenRow> rows;
  for (int i = 0; i < 12; ++i) rows.push_back({0, i, (i * 37 + 5) % 100, i == 11});
  int64_t position = 12;
  auto compare = [&](std::span<const TokenRow> step, const char* what) {
    const std::vector<float> expected = plain.forward_logits(step);
    const std::vector<float> actual = mapped.forward_logits(step);
    EXPECT_LT(relative_l2_error(actual, expected), tolerance) << what << " at position " << step.back().position;
    const int32_t expected_token = plain.forward_sample(step, SamplingParams{}).back();
    const int32_t actual_token = mapped.forward_sample(step, SamplingParams{}).back();
    if (!near_tie(expected)) EXPECT_EQ(actual_token, expected_token) << what << " at position " << step.back().position;
    return expected_token;
  };
  int32_t token = compare(rows, "prompt");
  for (int phase = 0; phase < 2; ++phase) {
    for (int step = 0; step < 3 - phase; ++step) {
      const TokenRow next{0, position++, token, true};
      token = compare(std::span<const TokenRow>(&next, 1), "decode");
    }
    if (phase == 1) break;
    std::vector<TokenRow> continuation;
    for (int i = 0; i < 8; ++i) continuation.push_back({0, position++, (i * 11 + token) % 100, i == 7});
    token = compare(continuation, "continuation");
  }
}

TEST(CudaDeviceMap, OffloadedLayersMatchTheWholeModelOnOneGpu) {
  SKIP_WITHOUT_CUDA_DEVICE();
  for (const Layout& layout : layouts()) {
    const auto checkpoint = open(layout.fixture);
    const ModelConfig config = ModelConfig::from_dir(fixture_dir(layout.fixture));
    cuda::CudaLlamaModel plain(config, checkpoint, base_options());
    for (OffloadExec exec : {OffloadExec::STREAM, OffloadExec::CPU, OffloadExec::AUTO}) {
      SCOPED_TRACE(layout.fixture + " with --offload-exec " + std::string(offload_exec_name(exec)));
      cuda::CudaModelOptions options = base_options();
      options.placement = layout.placement;
      options.offload_exec = exec;
      cuda::CudaLlamaModel mapped(config, checkpoint, options);
      // The embedding looked up on the host is f32 here (bf16 on a GPU), so only a map that keeps it
      // on the GPU and streams is the GPU's exact arithmetic.
      const bool same_arithmetic = exec == OffloadExec::STREAM && layout.placement.embed.is_gpu();
      expect_same_run(plain, mapped, same_arithmetic ? 1e-3 : 3e-2);
      const OffloadReport& report = mapped.offload_report();
      EXPECT_GT(report.speeds.offloaded_bytes, 0);
      if (exec == OffloadExec::STREAM) EXPECT_EQ(report.cpu_steps, 0);
      if (exec == OffloadExec::CPU) EXPECT_EQ(report.stream_steps, 0);
      if (exec == OffloadExec::AUTO) {
        EXPECT_GE(report.stream_steps, 4) << "the prompt and the continuation (logits and sample) stream";
        EXPECT_GE(report.cpu_steps, 10) << "single rows run on the CPU";
      }
    }
  }
}

// The embedding alone on the host (the rest on the GPU) is looked up there and handed over at every
// step, decode steps included: they run without a CUDA graph, which cannot capture the hand-off.
TEST(CudaDeviceMap, AnEmbeddingAloneOnTheHostMatchesTheWholeModel) {
  SKIP_WITHOUT_CUDA_DEVICE();
  const std::string fixture = "llama-gqa-llama3rope-f32";
  const auto checkpoint = open(fixture);
  const ModelConfig config = ModelConfig::from_dir(fixture_dir(fixture));
  const DeviceId gpu = DeviceId::cuda(0);
  cuda::CudaLlamaModel plain(config, checkpoint, base_options());
  cuda::CudaModelOptions options = base_options();
  options.placement = LayerPlacement{DeviceId::cpu(), {gpu, gpu}, gpu, gpu, gpu};
  cuda::CudaLlamaModel mapped(config, checkpoint, options);
  expect_same_run(plain, mapped, 3e-2);  // the host's embedding rows are f32, the GPU's bf16
  EXPECT_EQ(mapped.offload_report().speeds.offloaded_bytes, 0);
}

// Under auto with a CPU that reads barely faster than the copy engine: decode steps run the first
// offloaded layers on the CPU while the last layer and the head are copied to the GPU, which runs
// them; the tail's KV cache stays on the GPU throughout, and every step matches the plain model.
TEST(CudaDeviceMap, AutoLeavesTheLastUnitsToTheGpuWhileTheCpuComputes) {
  SKIP_WITHOUT_CUDA_DEVICE();
  const std::string fixture = "qwen2-bias-yarn-f32";
  const auto checkpoint = open(fixture);
  const ModelConfig config = ModelConfig::from_dir(fixture_dir(fixture));
  cuda::CudaLlamaModel plain(config, checkpoint, base_options());
  const DeviceId gpu = DeviceId::cuda(0), cpu = DeviceId::cpu();
  cuda::CudaModelOptions options = base_options();
  options.placement = LayerPlacement{gpu, {cpu, cpu, cpu}, cpu, cpu, gpu};
  options.offload_exec = OffloadExec::AUTO;
  // Units of 173, 173, 173 and 130 kB (f32; the tied head last): at 1 MB/s of copying against
  // 1.05 MB/s of CPU reads, layer 2 and the head (303 kB) are copied before the CPU is through
  // layers 0 and 1 (346 kB); streaming everything would still be slower than the CPU.
  options.offload_speeds = OffloadSpeeds{0, 0, 1e-3, 1.05e-3, 2e-3};
  cuda::CudaLlamaModel mapped(config, checkpoint, options);
  expect_same_run(plain, mapped, 3e-2);
  const OffloadReport& report = mapped.offload_report();
  EXPECT_EQ(report.overlapped_tail_units, 2);
  EXPECT_GE(report.stream_steps, 4) << "the prompt and the continuation stream";
  EXPECT_GE(report.cpu_steps, 10) << "single rows run on the CPU and the tail on the GPU";
}

TEST(CudaDeviceMap, AllOnOneGpuIsTheModelWithoutAMap) {
  SKIP_WITHOUT_CUDA_DEVICE();
  const std::string fixture = "llama-tied-linear-bf16";
  const auto checkpoint = open(fixture);
  const ModelConfig config = ModelConfig::from_dir(fixture_dir(fixture));
  cuda::CudaLlamaModel plain(config, checkpoint, base_options());
  cuda::CudaModelOptions options = base_options();
  const DeviceId gpu = DeviceId::cuda(0);
  options.placement = LayerPlacement{gpu, {gpu, gpu}, gpu, gpu, std::nullopt};
  cuda::CudaLlamaModel mapped(config, checkpoint, options);
  expect_same_run(plain, mapped, 1e-6);
  EXPECT_EQ(mapped.offload_report().speeds.offloaded_bytes, 0);
}

// Maps over two GPUs: each cuda:N has its own workspace, stream and KV caches, and the residual
// rows cross once per change of GPU (peer copy, event-ordered; decode is one graph forked into both
// streams). With two GPUs they run on cuda:0 and cuda:1; the same code also runs with both
// workspaces on one GPU (options.cuda_devices = {0, 0}), so a one-GPU machine checks the hand-offs.
struct TwoGpuLayout {
  std::string name, fixture;
  LayerPlacement placement;
  OffloadExec exec = OffloadExec::STREAM;
};

std::vector<TwoGpuLayout> two_gpu_layouts() {
  const DeviceId gpu0 = DeviceId::cuda(0), gpu1 = DeviceId::cuda(1), cpu = DeviceId::cpu(), disk = DeviceId::disk();
  return {
      {"layers split, head on the second", "llama-gqa-llama3rope-f32", {gpu0, {gpu0, gpu1}, gpu1, gpu1, std::nullopt}},
      // Starts on cuda:1 and goes back and forth; the tied head is on the other GPU than the embedding.
      {"back and forth, tied head apart", "qwen2-bias-yarn-f32", {gpu1, {gpu1, gpu0, gpu1}, gpu0, gpu0, std::nullopt}},
      {"everything on the second", "llama-tied-linear-bf16", {gpu1, {gpu1, gpu1}, gpu1, gpu1, std::nullopt}},
      // Two GPUs, RAM and disk: streamed, and under auto (decode rows on the CPU).
      {"two GPUs, cpu and disk, streamed", "qwen2-bias-yarn-f32", {gpu0, {gpu1, cpu, disk}, gpu0, gpu0, gpu1}},
      {"two GPUs, cpu and disk, auto", "qwen2-bias-yarn-f32", {gpu0, {cpu, gpu1, disk}, gpu1, gpu1, gpu0},
       OffloadExec::AUTO},
  };
}

void expect_two_gpu_maps_match_one_gpu(const std::vector<int>& cuda_devices) {
  for (const TwoGpuLayout& layout : two_gpu_layouts()) {
    SCOPED_TRACE(layout.name);
    const auto checkpoint = open(layout.fixture);
    const ModelConfig config = ModelConfig::from_dir(fixture_dir(layout.fixture));
    cuda::CudaLlamaModel plain(config, checkpoint, base_options());
    cuda::CudaModelOptions options = base_options();
    options.placement = layout.placement;
    options.offload_exec = layout.exec;
    options.cuda_devices = cuda_devices;
    cuda::CudaLlamaModel mapped(config, checkpoint, options);
    // GPU layers and streamed ones are the same kernels on the same rows; the host's embedding
    // lookup and CPU layers are f32 (bf16 tolerance).
    const bool on_gpus_only = layout.exec == OffloadExec::STREAM && layout.placement.embed.is_gpu();
    expect_same_run(plain, mapped, on_gpus_only ? 1e-3 : 3e-2);
    if (layout.exec == OffloadExec::AUTO) EXPECT_GE(mapped.offload_report().cpu_steps, 10) << "decode rows on the CPU";
  }
}

TEST(CudaDeviceMap, TwoGpuMapsMatchOneGpuWithBothOnOneDevice) {
  SKIP_WITHOUT_CUDA_DEVICE();
  expect_two_gpu_maps_match_one_gpu({0, 0});
}

TEST(CudaDeviceMap, TwoGpuMapsMatchOneGpu) {
  SKIP_WITHOUT_CUDA_DEVICE();
  int n_devices = 0;
  ASSERT_EQ(cudaGetDeviceCount(&n_devices), cudaSuccess);
  if (n_devices < 2) GTEST_SKIP() << "skipped: needs 2 CUDA devices, " << n_devices << " visible";
  expect_two_gpu_maps_match_one_gpu({});
}

TEST(CudaDeviceMap, MapsThatCannotRunAreRefusedByName) {
  SKIP_WITHOUT_CUDA_DEVICE();
  const std::string fixture = "llama-gqa-llama3rope-f32";
  const auto checkpoint = open(fixture);
  const ModelConfig config = ModelConfig::from_dir(fixture_dir(fixture));
  const DeviceId gpu = DeviceId::cuda(0), cpu = DeviceId::cpu();
  cuda::CudaModelOptions options = base_options();
  options.placement = LayerPlacement{gpu, {gpu, cpu}, gpu, gpu, gpu};
  try {
    cuda::CudaLlamaModel random_weights(config, 7, options);
    ADD_FAILURE() << "random weights cannot be offloaded";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("--model"), std::string::npos) << error.what();
  }
  options.placement = LayerPlacement{gpu, {gpu, DeviceId::cuda(999)}, gpu, gpu, gpu};
  try {
    cuda::CudaLlamaModel missing_gpu(config, checkpoint, options);
    ADD_FAILURE() << "cuda:999 does not exist";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("cuda:999"), std::string::npos) << error.what();
  }
  options.placement = LayerPlacement{gpu, {gpu}, gpu, gpu, gpu};
  EXPECT_THROW(cuda::CudaLlamaModel(config, checkpoint, options), Error) << "one placement for two layers";
  options.placement = LayerPlacement{gpu, {gpu, DeviceId::cuda(1)}, gpu, gpu, std::nullopt};
  options.cuda_devices = {0};
  try {
    cuda::CudaLlamaModel unmapped(config, checkpoint, options);
    ADD_FAILURE() << "cuda:1 has no CUDA device to run on";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("cuda:1"), std::string::npos) << error.what();
  }
}

}  // namespace
}  // namespace shardlm
