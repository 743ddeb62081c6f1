// `shardlm plan` end to end: plans of built-in shapes on declared devices, of a fixture checkpoint
// on this machine, explicit maps from a file or inline, --max-memory caps, and for bad input or a
// model that cannot fit, exit code 1 with a message naming the option or saying what is missing.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "cli_runner.h"
#include "io/safetensors.h"

namespace shardlm {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kMiB = int64_t(1) << 20;
constexpr int64_t kGiB = int64_t(1) << 30;
const fs::path kFixture = fs::path(SHARDLM_FIXTURES_DIR) / "models" / "llama-gqa-llama3rope-f32";
const std::string kTwoH100 = "cuda:0=80GiB,cuda:1=80GiB,cpu=256GiB";

// Runs `shardlm plan ARGS`; stdout only unless with_stderr.
CommandResult run_plan(const std::vector<std::string>& args, bool with_stderr = false) {
  std::vector<std::string> plan_args = {"plan"};
  plan_args.insert(plan_args.end(), args.begin(), args.end());
  return run_cli(plan_args, with_stderr);
}

nlohmann::json plan_json(const std::vector<std::string>& args) {
  std::vector<std::string> with_json = args;
  with_json.push_back("--json");
  const CommandResult result = run_plan(with_json);
  EXPECT_EQ(result.exit_code, 0) << run_plan(with_json, true).output;
  return result.exit_code == 0 ? nlohmann::json::parse(result.output) : nlohmann::json::object();
}

void expect_failure_naming(const std::vector<std::string>& args, const std::vector<std::string>& needles) {
  const CommandResult result = run_plan(args, true);
  EXPECT_EQ(result.exit_code, 1) << result.output;
  EXPECT_EQ(result.output.rfind("error: ", 0), 0u) << result.output;
  for (const std::string& needle : needles)
    EXPECT_NE(result.output.find(needle), std::string::npos) << "message should name '" << needle << "': " << result.output;
}

TEST(PlanCommand, Llama3_8BOnTwoGpusIsBalanced) {
  const nlohmann::json plan = plan_json({"--random", "llama3-8b", "--devices", kTwoH100});
  ASSERT_FALSE(plan.empty());
  EXPECT_EQ(plan["model"], "random:llama3-8b");
  EXPECT_EQ(plan["applied_strategy"], "balanced");
  EXPECT_EQ(plan["weight_bytes"], 16060522496);  // 8.03 B bf16 parameters
  ASSERT_EQ(plan["devices"].size(), 3u);
  // 32 equal layers with an equal-sized embedding and head: 16 on each GPU.
  EXPECT_EQ(plan["devices"][0]["layers"], "0-15");
  EXPECT_EQ(plan["devices"][1]["layers"], "16-31");
  EXPECT_EQ(plan["devices"][2]["total_bytes"], 0);
  // Default context min(8192, 4096) = 4096 tokens x 4096 bytes of K and V per token = 16 MiB a layer.
  EXPECT_EQ(plan["max_seq_len"], 4096);
  EXPECT_EQ(plan["devices"][0]["kv_cache_bytes"], 16 * 16 * kMiB);
  int64_t weights = 0;
  for (const nlohmann::json& device : plan["devices"]) {
    weights += device["weight_bytes"].get<int64_t>();
    EXPECT_LE(device["total_bytes"].get<int64_t>(), device["budget_bytes"].get<int64_t>());
  }
  EXPECT_EQ(weights, plan["weight_bytes"]);
  EXPECT_EQ(plan["device_map"].size(), 35u);  // embed, 32 layers, norm, head
  EXPECT_EQ(plan["device_map"]["lm_head"], "cuda:1");
  EXPECT_TRUE(plan["offload_gpu"].is_null());
}

TEST(PlanCommand, TablePrintsRangesAndVerboseReasons) {
  const CommandResult result = run_plan({"--random", "llama3-8b", "--devices", kTwoH100, "--verbose"});
  ASSERT_EQ(result.exit_code, 0) << result.output;
  for (const char* needle : {"device  layers", "headroom", "cuda:0  0-15", "cuda:1  16-31", "norm,head", "80.00 GiB",
                             "model.layers.16", "cuda:0 balanced share of"})
    EXPECT_NE(result.output.find(needle), std::string::npos) << needle << " not in:\n" << result.output;
}

TEST(PlanCommand, KvCacheGrowsWithSeqLenAndBatch) {
  // 8192 tokens x 2 sequences x 4096 bytes = 64 MiB a layer, 16 layers a GPU = 1 GiB.
  const nlohmann::json plan =
      plan_json({"--random", "llama3-8b", "--devices", kTwoH100, "--max-seq-len", "8192", "--batch", "2"});
  ASSERT_FALSE(plan.empty());
  EXPECT_EQ(plan["devices"][0]["kv_cache_bytes"], kGiB);
  EXPECT_EQ(plan["batch"], 2);
}

TEST(PlanCommand, MaxMemoryCapsAndOffloads) {
  // Only cuda:0 (10 GiB) and the cpu are named, so cuda:1 is left out as Accelerate leaves it.
  const nlohmann::json plan =
      plan_json({"--random", "llama3-8b", "--devices", kTwoH100, "--max-memory", "0=10GiB,cpu=64GiB"});
  ASSERT_FALSE(plan.empty());
  ASSERT_EQ(plan["devices"].size(), 2u);
  EXPECT_EQ(plan["devices"][0]["device"], "cuda:0");
  EXPECT_EQ(plan["devices"][0]["budget_bytes"], 10 * kGiB);
  EXPECT_EQ(plan["devices"][1]["device"], "cpu");
  EXPECT_NE(plan["devices"][1]["layers"], "");
  EXPECT_EQ(plan["offload_gpu"], "cuda:0");
  EXPECT_GT(plan["devices"][0]["staging_bytes"].get<int64_t>(), 0);
  // The JSON form means the same.
  const nlohmann::json same = plan_json(
      {"--random", "llama3-8b", "--devices", kTwoH100, "--max-memory", R"({"0": "10GiB", "cpu": 68719476736})"});
  EXPECT_EQ(same["device_map"], plan["device_map"]);
}

TEST(PlanCommand, ModelThatCannotFitSaysWhatIsMissing) {
  expect_failure_naming({"--random", "llama3-70b", "--devices", "cuda:0=80GiB,cuda:1=40GiB"},
                        {"does not fit", "model.layers.", "more is needed", "--max-memory"});
}

TEST(PlanCommand, FixtureCheckpointOnThisMachine) {
  // No --devices: the machine's own devices, which in a CPU-only build is the cpu's MemAvailable.
  const nlohmann::json plan = plan_json({"--model", kFixture.string(), "--dtype", "stored"});
  ASSERT_FALSE(plan.empty());
  const Checkpoint checkpoint = Checkpoint::open(kFixture);
  int64_t stored_bytes = 0;
  for (const auto& [name, tensor] : checkpoint.tensors()) stored_bytes += int64_t(tensor.n_bytes);
  EXPECT_EQ(plan["weight_bytes"], stored_bytes);
  EXPECT_EQ(plan["devices"].back()["device"], "cpu");
  EXPECT_EQ(plan["devices"].back()["budget_source"], "MemAvailable");
  EXPECT_EQ(plan["device_map"]["model.layers.1"], "cpu");
  // The f32 checkpoint counts half as much once held in bf16 (the default).
  const nlohmann::json bf16 = plan_json({"--model", kFixture.string(), "--devices", "cpu=1GiB"});
  EXPECT_EQ(bf16["weight_bytes"].get<int64_t>() * 2, stored_bytes);
}

TEST(PlanCommand, ExplicitMapFromFileAndInline) {
  const fs::path file = fs::temp_directory_path() / ("shardlm-plan-map-" + std::to_string(::getpid()) + ".json");
  std::ofstream(file) << R"({"model.embed_tokens": 0, "model.layers.0-9": 0, "model.layers.10-31": "cuda:1",
                             "model.norm": 1, "lm_head": 1})";
  const nlohmann::json plan = plan_json({"--random", "llama3-8b", "--devices", kTwoH100, "--device-map", file.string()});
  fs::remove(file);
  ASSERT_FALSE(plan.empty());
  EXPECT_EQ(plan["applied_strategy"], "explicit");
  EXPECT_EQ(plan["devices"][0]["layers"], "0-9");
  EXPECT_EQ(plan["devices"][1]["layers"], "10-31");
  const nlohmann::json inline_plan =
      plan_json({"--random", "llama3-8b", "--devices", kTwoH100, "--device-map", R"({"": "cuda:1"})"});
  EXPECT_EQ(inline_plan["devices"][1]["layers"], "0-31");
  // A plan's own device_map is a valid explicit map that reproduces it.
  const nlohmann::json again = plan_json(
      {"--random", "llama3-8b", "--devices", kTwoH100, "--device-map", plan["device_map"].dump()});
  EXPECT_EQ(again["device_map"], plan["device_map"]);
}

TEST(PlanCommand, BadInputIsRefusedByName) {
  expect_failure_naming({"--random", "llama3-8b", "--devices", kTwoH100, "--max-memory", "0=lots"},
                        {"--max-memory", "\"lots\""});
  expect_failure_naming({"--random", "llama3-8b", "--devices", "cuda:0,cpu=1GiB"}, {"--devices", "cuda:0 needs a size"});
  expect_failure_naming({"--random", "llama3-8b", "--devices", kTwoH100, "--device-map", "/nonexistent/map.json"},
                        {"--device-map", "/nonexistent/map.json"});
  expect_failure_naming({"--random", "llama3-8b", "--devices", kTwoH100, "--device-map", R"({"": "cuda:7"})"},
                        {"cuda:7", "not among the devices"});
  expect_failure_naming({"--random", "no-such-shape"}, {"--random", "no-such-shape"});
  expect_failure_naming({"--random", "llama3-8b", "--devices", kTwoH100, "--max-seq-len", "100000"},
                        {"--max-seq-len 100000", "8192"});
  expect_failure_naming({"--random", "llama3-8b", "--devices", kTwoH100, "--batch", "0"}, {"--batch"});
  expect_failure_naming({"--random", "llama3-8b", "--devices", kTwoH100, "--dtype", "int8"}, {"--dtype", "int8"});
  expect_failure_naming({"--model", "/nonexistent/model"}, {"/nonexistent/model"});
}

}  // namespace
}  // namespace shardlm
