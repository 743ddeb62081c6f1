// The planner against expectations worked out by hand. Most tests use a synthetic model in round
// GiB (a 2 GiB embedding and head, 32 layers of 1 GiB, an 8 KiB norm) with the run-time costs
// switched off, so each expected split is simple arithmetic written next to it; separate tests
// switch the KV cache, activations and offload staging on one at a time.
#include <gtest/gtest.h>

#include <fmt/format.h>

#include "error_message.h"
#include "plan/device_map/plan_report.h"
#include "plan/device_map/planner.h"

namespace shardlm {
namespace {

constexpr int64_t kMiB = int64_t(1) << 20;
constexpr int64_t kGiB = int64_t(1) << 30;
constexpr int64_t kNorm = 8 << 10;

ModelLayout synthetic_layout(int n_layers, int64_t embed, int64_t layer, int64_t head, bool tied = false) {
  ModelLayout layout;
  layout.tied_head = tied;
  layout.modules.push_back({"model.embed_tokens", ModuleKind::EMBED, -1, embed, {"model.embed_tokens.weight"}});
  for (int il = 0; il < n_layers; ++il)
    layout.modules.push_back({fmt::format("model.layers.{}", il), ModuleKind::LAYER, il, layer,
                              {fmt::format("model.layers.{}.self_attn.q_proj.weight", il),
                               fmt::format("model.layers.{}.mlp.up_proj.weight", il)}});
  layout.modules.push_back({"model.norm", ModuleKind::NORM, -1, kNorm, {"model.norm.weight"}});
  if (tied) {
    layout.modules.push_back({"lm_head", ModuleKind::HEAD, -1, 0, {}});
  } else {
    layout.modules.push_back({"lm_head", ModuleKind::HEAD, -1, head, {"lm_head.weight"}});
  }
  return layout;
}

// 2 GiB embedding and head, 32 layers of 1 GiB: 36 GiB + 8 KiB.
ModelLayout gib_model() { return synthetic_layout(32, 2 * kGiB, kGiB, 2 * kGiB); }

PlanOptions weights_only(DeviceMapStrategy strategy) {
  PlanOptions options;
  options.strategy = strategy;
  options.gpu_runtime_overhead_bytes = 0;
  return options;  // layout.kv_bytes_per_token etc. are 0 in synthetic layouts
}

std::vector<DeviceBudget> devices(const std::string& text) { return budgets_from_declaration(text); }

// The layers on `device`, as "a-b" ranges.
std::string layers_on(const DevicePlan& plan, DeviceId device) {
  for (const DeviceUsage& usage : plan.devices)
    if (usage.device == device) return format_layer_ranges(usage.layers);
  return "(no such device)";
}

const DeviceUsage& usage_of(const DevicePlan& plan, DeviceId device) {
  for (const DeviceUsage& usage : plan.devices)
    if (usage.device == device) return usage;
  throw std::runtime_error("no device " + device.name());
}

const ModulePlacement& module_of(const DevicePlan& plan, const std::string& name) {
  for (const ModulePlacement& module : plan.modules)
    if (module.name == name) return module;
  throw std::runtime_error("no module " + name);
}

void expect_within_budgets(const DevicePlan& plan) {
  for (const DeviceUsage& usage : plan.devices)
    if (usage.budget_bytes) EXPECT_LE(usage.total_bytes(), *usage.budget_bytes) << usage.device.name();
}

TEST(Planner, LayerRangesFormat) {
  EXPECT_EQ(format_layer_ranges({0, 1, 2, 3}), "0-3");
  EXPECT_EQ(format_layer_ranges({0, 1, 2, 3, 8, 10, 11, 12}), "0-3,8,10-12");
  EXPECT_EQ(format_layer_ranges({}), "");
}

TEST(Planner, EverythingOnOneGpuWhenItFits) {
  const DevicePlan plan = plan_device_map(gib_model(), devices("0=80GiB,cpu=64GiB"), weights_only(DeviceMapStrategy::AUTO));
  EXPECT_EQ(plan.applied, DeviceMapStrategy::SEQUENTIAL);  // auto with one GPU
  EXPECT_EQ(layers_on(plan, DeviceId::cuda(0)), "0-31");
  EXPECT_EQ(plan.placement.head, DeviceId::cuda(0));
  EXPECT_FALSE(plan.placement.offload_gpu.has_value());
  EXPECT_EQ(usage_of(plan, DeviceId::cuda(0)).staging_bytes, 0);  // nothing offloaded, nothing staged
  EXPECT_EQ(usage_of(plan, DeviceId::cuda(0)).weight_bytes, 36 * kGiB + kNorm);
  EXPECT_EQ(*usage_of(plan, DeviceId::cuda(0)).headroom_bytes(), 44 * kGiB - kNorm);
  EXPECT_EQ(usage_of(plan, DeviceId::cpu()).total_bytes(), 0);
  EXPECT_EQ(module_of(plan, "model.layers.5").reason.substr(0, 22), "fits in cuda:0 budget ");
}

TEST(Planner, SequentialFillsGpusInOrderThenCpuAndReservesStaging) {
  // Without staging: cuda:0 = embed 2 + 8 layers. Offloading happens, so cuda:0 keeps two buffers
  // of the largest offloaded unit (the 2 GiB head) = 4 GiB, leaving 6: embed + layers 0-3.
  // cuda:1 takes 10 layers (4-13); the cpu takes 14-31 (18 GiB), the norm and the head (2 GiB).
  const DevicePlan plan =
      plan_device_map(gib_model(), devices("0=10GiB,1=10GiB,cpu=24GiB"), weights_only(DeviceMapStrategy::SEQUENTIAL));
  EXPECT_EQ(layers_on(plan, DeviceId::cuda(0)), "0-3");
  EXPECT_EQ(layers_on(plan, DeviceId::cuda(1)), "4-13");
  EXPECT_EQ(layers_on(plan, DeviceId::cpu()), "14-31");
  EXPECT_EQ(plan.placement.embed, DeviceId::cuda(0));
  EXPECT_EQ(plan.placement.norm, DeviceId::cpu());
  EXPECT_EQ(plan.placement.head, DeviceId::cpu());
  EXPECT_EQ(plan.placement.offload_gpu, DeviceId::cuda(0));
  EXPECT_EQ(usage_of(plan, DeviceId::cuda(0)).staging_bytes, 4 * kGiB);
  EXPECT_EQ(usage_of(plan, DeviceId::cuda(0)).total_bytes(), 10 * kGiB);
  EXPECT_EQ(usage_of(plan, DeviceId::cpu()).weight_bytes, 20 * kGiB + kNorm);
  expect_within_budgets(plan);
  // The first layer of each device says why the previous one could not take it.
  EXPECT_NE(module_of(plan, "model.layers.4").reason.find("cuda:0 budget full (needs 1.00 GiB, 0 B left)"),
            std::string::npos)
      << module_of(plan, "model.layers.4").reason;
  EXPECT_NE(module_of(plan, "model.layers.14").reason.find("cuda:1 budget full"), std::string::npos);
}

TEST(Planner, SequentialSpillsToCpuThenDisk) {
  // Staging 4 GiB (the head goes off the GPU): cuda:0 = embed + layers 0-3; the cpu's 10 GiB take
  // layers 4-13; disk, unlimited, takes the rest.
  const DevicePlan plan =
      plan_device_map(gib_model(), devices("0=10GiB,cpu=10GiB,disk"), weights_only(DeviceMapStrategy::SEQUENTIAL));
  EXPECT_EQ(layers_on(plan, DeviceId::cuda(0)), "0-3");
  EXPECT_EQ(layers_on(plan, DeviceId::cpu()), "4-13");
  EXPECT_EQ(layers_on(plan, DeviceId::disk()), "14-31");
  EXPECT_EQ(plan.placement.head, DeviceId::disk());
  EXPECT_EQ(usage_of(plan, DeviceId::disk()).weight_bytes, 20 * kGiB + kNorm);
  EXPECT_FALSE(usage_of(plan, DeviceId::disk()).headroom_bytes().has_value());
  EXPECT_EQ(module_of(plan, "model.layers.20").reason, "fits on disk (no limit)");
  expect_within_budgets(plan);
}

TEST(Planner, GpuTooSmallForStagingLeavesOffloadedLayersToTheCpu) {
  // Two staging buffers of the 2 GiB head would need 4 GiB, more than cuda:0's 3 GiB: no staging,
  // no offload GPU, and cuda:0 holds embed + layer 0.
  const DevicePlan plan =
      plan_device_map(gib_model(), devices("0=3GiB,cpu=64GiB"), weights_only(DeviceMapStrategy::SEQUENTIAL));
  EXPECT_FALSE(plan.placement.offload_gpu.has_value());
  EXPECT_EQ(usage_of(plan, DeviceId::cuda(0)).staging_bytes, 0);
  EXPECT_EQ(layers_on(plan, DeviceId::cuda(0)), "0");
  EXPECT_EQ(layers_on(plan, DeviceId::cpu()), "1-31");
  ASSERT_FALSE(plan.notes.empty());
  EXPECT_NE(plan.notes.back().find("cannot hold two staging buffers of 2.00 GiB"), std::string::npos) << plan.notes.back();
}

TEST(Planner, DiskLayersKeepTheirKvCacheInCpuMemory) {
  ModelLayout layout = gib_model();
  layout.kv_bytes_per_token = 256 << 10;  // 1024 tokens: 256 MiB per layer, so a layer costs 1.25 GiB
  PlanOptions options = weights_only(DeviceMapStrategy::SEQUENTIAL);
  options.max_seq_len = 1024;
  // cuda:0 (6 GiB) keeps 4 GiB of staging and takes the embedding. If the cpu holds k layers and
  // disk the other 32 - k, the cpu also keeps the disk layers' caches:
  // 1.25 k + 0.25 (32 - k) <= 9  ->  k <= 1. So the cpu holds layer 0 and 8 GiB of caches.
  const DevicePlan plan = plan_device_map(layout, devices("0=6GiB,cpu=9GiB,disk"), options);
  EXPECT_EQ(plan.placement.embed, DeviceId::cuda(0));
  EXPECT_EQ(layers_on(plan, DeviceId::cpu()), "0");
  EXPECT_EQ(layers_on(plan, DeviceId::disk()), "1-31");
  EXPECT_EQ(usage_of(plan, DeviceId::disk()).kv_cache_bytes, 0);
  EXPECT_EQ(usage_of(plan, DeviceId::cpu()).kv_cache_bytes, 8 * kGiB);
  EXPECT_EQ(usage_of(plan, DeviceId::cpu()).total_bytes(), 9 * kGiB);
  EXPECT_EQ(module_of(plan, "model.layers.5").kv_cache_bytes, 256 * kMiB);
  // With 7 GiB of cpu, even 32 caches alone (8 GiB) do not fit.
  EXPECT_ERROR_NAMES(plan_device_map(layout, devices("0=6GiB,cpu=7GiB,disk"), options), "does not fit",
                     "cpu budget full for the KV cache and buffers of model.layers.28");
  // Without a cpu, disk cannot take a layer at all.
  EXPECT_ERROR_NAMES(plan_device_map(layout, devices("0=6GiB,disk"), options), "does not fit", "no cpu device");
}

TEST(Planner, BalancedSplits32EqualLayersOverTwoGpus) {
  // 36 GiB over two GPUs: cuda:0 = embed 2 + 16 layers = 18; cuda:1 = 16 layers + norm + head 2 =
  // 18 GiB + 8 KiB. 17/15 would put 19 GiB on cuda:0, so 16/16 is the most even split.
  const DevicePlan plan = plan_device_map(gib_model(), devices("0=80GiB,1=80GiB,cpu=64GiB"),
                                          weights_only(DeviceMapStrategy::AUTO));
  EXPECT_EQ(plan.applied, DeviceMapStrategy::BALANCED);  // auto with two GPUs, as Accelerate
  EXPECT_EQ(layers_on(plan, DeviceId::cuda(0)), "0-15");
  EXPECT_EQ(layers_on(plan, DeviceId::cuda(1)), "16-31");
  EXPECT_EQ(plan.placement.head, DeviceId::cuda(1));
  EXPECT_EQ(usage_of(plan, DeviceId::cuda(0)).total_bytes(), 18 * kGiB);
  EXPECT_EQ(usage_of(plan, DeviceId::cuda(1)).total_bytes(), 18 * kGiB + kNorm);
  EXPECT_NE(module_of(plan, "model.layers.16").reason.find("cuda:0 balanced share"), std::string::npos)
      << module_of(plan, "model.layers.16").reason;
}

TEST(Planner, BalancedSplits32EqualLayersOverThreeGpus) {
  // 36 GiB + 8 KiB over three GPUs: no GPU can hold less than 12 GiB + 8 KiB. That share gives
  // cuda:0 embed + 10 layers (12), cuda:1 12 layers (12), cuda:2 10 layers + norm + head.
  const DevicePlan plan = plan_device_map(gib_model(), devices("0=80GiB,1=80GiB,2=80GiB,cpu=64GiB"),
                                          weights_only(DeviceMapStrategy::BALANCED));
  EXPECT_EQ(layers_on(plan, DeviceId::cuda(0)), "0-9");
  EXPECT_EQ(layers_on(plan, DeviceId::cuda(1)), "10-21");
  EXPECT_EQ(layers_on(plan, DeviceId::cuda(2)), "22-31");
  EXPECT_EQ(usage_of(plan, DeviceId::cuda(2)).total_bytes(), 12 * kGiB + kNorm);
}

TEST(Planner, BalancedRespectsASmallerGpu) {
  // cuda:0 may hold only 10 GiB: it takes embed + 8 layers; cuda:1 the other 24 layers + head.
  const DevicePlan plan = plan_device_map(gib_model(), devices("0=10GiB,1=80GiB,cpu=64GiB"),
                                          weights_only(DeviceMapStrategy::BALANCED));
  EXPECT_EQ(layers_on(plan, DeviceId::cuda(0)), "0-7");
  EXPECT_EQ(layers_on(plan, DeviceId::cuda(1)), "8-31");
  expect_within_budgets(plan);
}

TEST(Planner, BalancedFallsBackToFillingWhenGpusAreTooSmall) {
  // 20 GiB of GPUs for 36 GiB: no share works, so the GPUs are filled to their budgets (less the
  // 4 GiB staging on cuda:0) and the rest goes to the cpu.
  const DevicePlan plan = plan_device_map(gib_model(), devices("0=10GiB,1=10GiB,cpu=64GiB"),
                                          weights_only(DeviceMapStrategy::BALANCED));
  EXPECT_EQ(plan.applied, DeviceMapStrategy::BALANCED);
  EXPECT_EQ(layers_on(plan, DeviceId::cuda(0)), "0-3");
  EXPECT_EQ(layers_on(plan, DeviceId::cuda(1)), "4-13");
  EXPECT_EQ(layers_on(plan, DeviceId::cpu()), "14-31");
  ASSERT_FALSE(plan.notes.empty());
  EXPECT_NE(plan.notes.back().find("cannot hold the whole model"), std::string::npos);
}

TEST(Planner, BalancedLow0LeavesGpu0EmptyWhenTheOthersSuffice) {
  // GPUs 1 and 2 split the model as two GPUs would (16/16); GPU 0 holds nothing.
  const DevicePlan plan = plan_device_map(gib_model(), devices("0=80GiB,1=80GiB,2=80GiB,cpu=64GiB"),
                                          weights_only(DeviceMapStrategy::BALANCED_LOW_0));
  EXPECT_EQ(layers_on(plan, DeviceId::cuda(0)), "");
  EXPECT_EQ(usage_of(plan, DeviceId::cuda(0)).total_bytes(), 0);
  EXPECT_EQ(plan.placement.embed, DeviceId::cuda(1));
  EXPECT_EQ(layers_on(plan, DeviceId::cuda(1)), "0-15");
  EXPECT_EQ(layers_on(plan, DeviceId::cuda(2)), "16-31");
  EXPECT_NE(module_of(plan, "model.embed_tokens").reason.find("balanced_low_0 keeps cuda:0"), std::string::npos);
}

TEST(Planner, BalancedLow0GivesGpu0OnlyWhatTheOthersCannotHold) {
  // GPUs 1 and 2 hold 15 GiB each. If cuda:0 takes embed + m layers, cuda:2 gets
  // (32 - m - 15) layers + norm + head = 19 - m GiB + 8 KiB <= 15 only for m >= 5. Then the other
  // 27 layers + head balance best as 15 on cuda:1 and 12 + norm + head (14 GiB) on cuda:2.
  const DevicePlan plan = plan_device_map(gib_model(), devices("0=80GiB,1=15GiB,2=15GiB,cpu=64GiB"),
                                          weights_only(DeviceMapStrategy::BALANCED_LOW_0));
  EXPECT_EQ(layers_on(plan, DeviceId::cuda(0)), "0-4");
  EXPECT_EQ(layers_on(plan, DeviceId::cuda(1)), "5-19");
  EXPECT_EQ(layers_on(plan, DeviceId::cuda(2)), "20-31");
  expect_within_budgets(plan);
}

TEST(Planner, TiedHeadStaysWithTheEmbedding) {
  // Tied: embed 2 GiB (also the head), 4 layers of 1 GiB. Sequential on 5 GiB + 10 GiB: cuda:0 takes
  // embed + layers 0-2, cuda:1 layer 3 and the norm; the head is the embedding, so it is on cuda:0.
  ModelLayout layout = synthetic_layout(4, 2 * kGiB, kGiB, 0, /*tied=*/true);
  layout.logits_bytes_per_sequence = 64 * kMiB;
  const DevicePlan plan = plan_device_map(layout, devices(fmt::format("0={},1=10GiB", 5 * kGiB + 64 * kMiB)),
                                          weights_only(DeviceMapStrategy::SEQUENTIAL));
  EXPECT_EQ(plan.placement.embed, DeviceId::cuda(0));
  EXPECT_EQ(plan.placement.head, DeviceId::cuda(0));
  EXPECT_EQ(plan.placement.norm, DeviceId::cuda(1));
  EXPECT_EQ(layers_on(plan, DeviceId::cuda(0)), "0-2");
  EXPECT_NE(module_of(plan, "lm_head").reason.find("fits in cuda:0"), std::string::npos);
  // The head's logits are charged where it runs: cuda:0.
  EXPECT_EQ(usage_of(plan, DeviceId::cuda(0)).activation_bytes, 64 * kMiB);
  EXPECT_EQ(usage_of(plan, DeviceId::cuda(1)).activation_bytes, 0);
}

TEST(Planner, TiedHeadAndItsLogitsMustFitWithTheEmbedding) {
  // The embedding alone fits in cuda:0 (2 GiB) but not with the head's logits: both move on.
  ModelLayout layout = synthetic_layout(4, 2 * kGiB, kGiB, 0, /*tied=*/true);
  layout.logits_bytes_per_sequence = 64 * kMiB;
  const DevicePlan plan = plan_device_map(layout, devices("0=2GiB,1=10GiB"), weights_only(DeviceMapStrategy::SEQUENTIAL));
  EXPECT_EQ(plan.placement.embed, DeviceId::cuda(1));
  EXPECT_EQ(plan.placement.head, DeviceId::cuda(1));
  EXPECT_EQ(usage_of(plan, DeviceId::cuda(0)).total_bytes(), 0);
}

TEST(Planner, KvReserveGrowsWithSequenceLengthAndBatch) {
  // kv 256 KiB per token and layer: 1024 tokens x 1 sequence = 256 MiB per layer.
  ModelLayout layout = synthetic_layout(32, kGiB, kGiB, kGiB);
  layout.kv_bytes_per_token = 256 << 10;
  PlanOptions options = weights_only(DeviceMapStrategy::SEQUENTIAL);
  options.max_seq_len = 1024;
  const std::vector<DeviceBudget> budgets = devices("0=30GiB,cpu=200GiB");
  // Staging 2 GiB (two 1 GiB units offloaded) leaves 28: embed 1 + n * 1.25 <= 28 -> n = 21.
  const DevicePlan short_plan = plan_device_map(layout, budgets, options);
  EXPECT_EQ(layers_on(short_plan, DeviceId::cuda(0)), "0-20");
  EXPECT_EQ(usage_of(short_plan, DeviceId::cuda(0)).kv_cache_bytes, 21 * 256 * kMiB);
  EXPECT_EQ(usage_of(short_plan, DeviceId::cpu()).kv_cache_bytes, 11 * 256 * kMiB);  // the cache follows the layer
  EXPECT_EQ(module_of(short_plan, "model.layers.0").kv_cache_bytes, 256 * kMiB);
  EXPECT_EQ(module_of(short_plan, "model.norm").kv_cache_bytes, 0);

  // 2048 tokens x 2 sequences = 1 GiB per layer: 1 + 2n <= 28 -> n = 13.
  options.max_seq_len = 2048;
  options.batch = 2;
  const DevicePlan long_plan = plan_device_map(layout, budgets, options);
  EXPECT_EQ(layers_on(long_plan, DeviceId::cuda(0)), "0-12");
  EXPECT_EQ(module_of(long_plan, "model.layers.0").kv_cache_bytes, kGiB);
  EXPECT_EQ(long_plan.max_seq_len, 2048);
  EXPECT_EQ(long_plan.batch, 2);
}

TEST(Planner, ActivationsAreReservedOncePerComputingDevice) {
  ModelLayout layout = synthetic_layout(4, kGiB, kGiB, kGiB);
  layout.activation_bytes_per_row = 1 << 10;
  layout.logits_bytes_per_sequence = kMiB;
  PlanOptions options;  // the real 256 MiB GPU overhead
  options.strategy = DeviceMapStrategy::BALANCED;
  options.max_seq_len = 100;
  options.batch = 3;
  options.max_rows = 512;
  const DevicePlan plan = plan_device_map(layout, devices("0=80GiB,1=80GiB"), options);
  // rows = min(512, 3 x 100) = 300: 300 KiB of buffers and 256 MiB overhead on each GPU, and the
  // head's logits for 3 sequences (3 MiB) on the GPU that runs it.
  EXPECT_EQ(usage_of(plan, DeviceId::cuda(0)).activation_bytes, 300 * 1024 + 256 * kMiB);
  EXPECT_EQ(usage_of(plan, DeviceId::cuda(1)).activation_bytes, 300 * 1024 + 256 * kMiB + 3 * kMiB);
  EXPECT_EQ(plan.placement.head, DeviceId::cuda(1));

  // More sequences than rows per pass: a decode step still runs as one pass, so it is reserved.
  options.batch = 1000;
  const DevicePlan wide = plan_device_map(layout, devices("0=80GiB,1=80GiB"), options);
  EXPECT_EQ(usage_of(wide, DeviceId::cuda(0)).activation_bytes, 1000 * 1024 + 256 * kMiB);
}

TEST(Planner, ImpossibleBudgetsSayHowMuchIsMissing) {
  // GPU only, no offload target: cuda:0 = embed + 8 layers (10 GiB); 24 layers + norm + head
  // (26 GiB + 8 KiB) are left and nothing is unused, so 26 GiB are missing.
  EXPECT_ERROR_NAMES(plan_device_map(gib_model(), devices("0=10GiB"), weights_only(DeviceMapStrategy::AUTO)),
                     "does not fit", "model.layers.8 to lm_head", "26.00 GiB of weights and KV cache",
                     "at least 26.00 GiB more");
  // With a cpu, cuda:0 also keeps 4 GiB of staging for the offloaded head: embed + 4 layers on
  // cuda:0, 10 layers on the cpu, and 18 layers + norm + head = 20 GiB + 8 KiB left over.
  EXPECT_ERROR_NAMES(plan_device_map(gib_model(), devices("0=10GiB,cpu=10GiB"), weights_only(DeviceMapStrategy::AUTO)),
                     "model.layers.14 to lm_head", "at least 20.00 GiB more", "allow offloading to disk");
  // Room left over is subtracted: after the 0.5 GiB embedding and 8 KiB norm, cuda:0 has
  // 1.5 GiB - 8 KiB for a 2 GiB head, so 512 MiB + 8 KiB are missing.
  EXPECT_ERROR_NAMES(plan_device_map(synthetic_layout(0, kGiB / 2, kGiB, 2 * kGiB), devices("0=2GiB"),
                                     weights_only(DeviceMapStrategy::SEQUENTIAL)),
                     "lm_head (2.00 GiB", "1.50 GiB unused", "at least 512.01 MiB more",
                     "cuda:0 budget full (needs 2.00 GiB, 1.50 GiB left)");
}

TEST(Planner, BadOptionsAreRefused) {
  PlanOptions options = weights_only(DeviceMapStrategy::AUTO);
  options.batch = 0;
  EXPECT_ERROR_NAMES(plan_device_map(gib_model(), devices("0=80GiB"), options), "--batch");
  options.batch = 1;
  options.max_seq_len = 0;
  EXPECT_ERROR_NAMES(plan_device_map(gib_model(), devices("0=80GiB"), options), "--max-seq-len");
  ModelLayout with_cache = gib_model();
  with_cache.kv_bytes_per_token = 4096;
  options.max_seq_len = int64_t(1) << 31;
  options.batch = 1 << 30;
  EXPECT_ERROR_NAMES(plan_device_map(with_cache, devices("0=80GiB"), options), "--batch", "KV cache");
}

TEST(Planner, ReportsListEveryDeviceAndModule) {
  const DevicePlan plan = plan_device_map(gib_model(), devices("0=10GiB,1=10GiB,cpu=24GiB"),
                                          weights_only(DeviceMapStrategy::SEQUENTIAL));
  const nlohmann::json json = device_plan_to_json(plan);
  ASSERT_EQ(json["devices"].size(), 3u);
  EXPECT_EQ(json["devices"][0]["layers"], "0-3");
  EXPECT_EQ(json["devices"][0]["staging_bytes"], 4 * kGiB);
  EXPECT_EQ(json["devices"][0]["headroom_bytes"], 0);
  EXPECT_EQ(json["devices"][2]["modules"], nlohmann::json({"model.norm", "lm_head"}));
  EXPECT_EQ(json["modules"].size(), 35u);
  EXPECT_EQ(json["device_map"]["model.layers.13"], "cuda:1");
  EXPECT_EQ(json["offload_gpu"], "cuda:0");
  const std::string table = format_device_plan(plan, /*with_reasons=*/true);
  EXPECT_NE(table.find("cuda:1  4-13"), std::string::npos) << table;
  EXPECT_NE(table.find("cpu     14-31   norm,head"), std::string::npos) << table;
  EXPECT_NE(table.find("cuda:0 budget full"), std::string::npos) << table;
}

// 32 mixture-of-experts layers of 1 GiB, 768 MiB of it experts.
ModelLayout moe_model() {
  ModelLayout layout = gib_model();
  for (ModuleWeights& module : layout.modules)
    if (module.kind == ModuleKind::LAYER) module.expert_bytes = 768 * kMiB;
  return layout;
}

TEST(Planner, CpuMoeKeepsEveryExpertInCpuMemoryAndTheRestOfTheLayersOnTheGpu) {
  PlanOptions options = weights_only(DeviceMapStrategy::AUTO);
  options.cpu_moe_layers = INT32_MAX;
  // 4 GiB of embedding and head plus 32 x 256 MiB of attention and routers: 12 GiB on the GPU.
  const DevicePlan plan = plan_device_map(moe_model(), devices("cuda:0=13GiB,cpu=30GiB"), options);
  EXPECT_EQ(layers_on(plan, DeviceId::cuda(0)), "0-31");
  EXPECT_EQ(usage_of(plan, DeviceId::cuda(0)).weight_bytes, 12 * kGiB + kNorm);
  EXPECT_EQ(usage_of(plan, DeviceId::cpu()).weight_bytes, 24 * kGiB);
  EXPECT_EQ(usage_of(plan, DeviceId::cpu()).budget_bytes, 30 * kGiB);
  EXPECT_EQ(plan.cpu_expert_bytes, 24 * kGiB);
  EXPECT_EQ(plan.placement.experts_in_cpu, std::vector<bool>(32, true));
  EXPECT_CONTAINS(plan.notes.back(), "--cpu-moe: the experts of layers 0-31 (24.00 GiB) stay in cpu memory");
  expect_within_budgets(plan);
  // Without it the model needs 36 GiB: most layers go to the cpu whole (and the GPU keeps room to
  // stream them).
  EXPECT_EQ(layers_on(plan_device_map(moe_model(), devices("cuda:0=13GiB,cpu=30GiB"), weights_only(DeviceMapStrategy::AUTO)),
                      DeviceId::cuda(0)),
            "0-6");
}

TEST(Planner, NCpuMoeKeepsTheFirstLayersExpertsInCpuMemory) {
  PlanOptions options = weights_only(DeviceMapStrategy::SEQUENTIAL);
  options.cpu_moe_layers = 8;
  const DevicePlan plan = plan_device_map(moe_model(), devices("cuda:0=32GiB,cpu=30GiB"), options);
  EXPECT_EQ(layers_on(plan, DeviceId::cuda(0)), "0-31");
  EXPECT_EQ(plan.cpu_expert_bytes, 6 * kGiB);
  std::vector<bool> expected(32, false);
  std::fill(expected.begin(), expected.begin() + 8, true);
  EXPECT_EQ(plan.placement.experts_in_cpu, expected);
  EXPECT_CONTAINS(plan.notes.back(), "--n-cpu-moe 8: the experts of layers 0-7 (6.00 GiB)");
}

TEST(Planner, CpuMoeErrorsNameTheOption) {
  PlanOptions options = weights_only(DeviceMapStrategy::AUTO);
  options.cpu_moe_layers = INT32_MAX;
  EXPECT_ERROR_NAMES(plan_device_map(gib_model(), devices("cuda:0=40GiB,cpu=30GiB"), options),
                     "--cpu-moe: the model has no experts in those layers to keep in cpu memory");
  EXPECT_ERROR_NAMES(plan_device_map(moe_model(), devices("cuda:0=40GiB,cpu=20GiB"), options),
                     "--cpu-moe: the experts of layers 0-31 take 24.00 GiB, more than the cpu budget of 20.00 GiB");
  EXPECT_ERROR_NAMES(plan_device_map(moe_model(), devices("cuda:0=40GiB,disk"), options),
                     "--cpu-moe keeps experts in cpu memory, but cpu is not among the devices");
}

}  // namespace
}  // namespace shardlm
