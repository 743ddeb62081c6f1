// The shardlm command end to end: its outputs on a fixture checkpoint, and for bad input a clear
// message naming the file or option, exit code 1, and no crash.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "broken_model.h"
#include "cli_runner.h"
#include "tokenizer/tokenizer.h"

namespace shardlm {
namespace {

namespace fs = std::filesystem;

TEST(Cli, TokenizePrintsTheTokenizersIdsAsJson) {
  const CommandResult result = run_cli({"tokenize", "--model", kFixture.string(), "Hello, world! 123"}, false);
  ASSERT_EQ(result.exit_code, 0) << result.output;
  const Tokenizer tokenizer = Tokenizer::from_dir(kFixture);
  EXPECT_EQ(nlohmann::json::parse(result.output).get<std::vector<int32_t>>(), tokenizer.encode("Hello, world! 123"));
}

TEST(Cli, GenerateJsonMatchesReferenceGreedyTokens) {
  std::ifstream in(kFixture / "reference.json");
  const nlohmann::json reference = nlohmann::json::parse(in)["prompts"][1];
  const CommandResult result = run_cli({"generate", "--model", kFixture.string(), "--prompt", reference["text"],
                                        "--max-new-tokens", "8", "--temperature", "0", "--json"}, false);
  ASSERT_EQ(result.exit_code, 0) << result.output;
  const nlohmann::json object = nlohmann::json::parse(result.output);
  EXPECT_EQ(object["prompt_ids"], reference["prompt_ids"]);
  std::vector<int32_t> expected = reference["greedy_ids"];
  expected.resize(8);
  EXPECT_EQ(object["output_ids"].get<std::vector<int32_t>>(), expected);
  EXPECT_TRUE(object["text"].is_string());
}

// generation_config.json's sampling settings apply as Transformers' generate() applies them: with
// do_sample, its temperature, and its min_p of 1, which keeps only the likeliest token (greedy).
TEST_F(BrokenModel, GenerationConfigSamplingSettingsApply) {
  auto output_ids = [&](const std::vector<std::string>& extra) {
    std::vector<std::string> args = {"generate", "--model", dir_.string(), "--prompt", "Hello, world!",
                                     "--max-new-tokens", "12", "--json"};
    args.insert(args.end(), extra.begin(), extra.end());
    const CommandResult result = run_cli(args, false);
    EXPECT_EQ(result.exit_code, 0) << result.output;
    return nlohmann::json::parse(result.output)["output_ids"].get<std::vector<int32_t>>();
  };
  const std::vector<int32_t> greedy = output_ids({"--temperature", "0"});
  set_json_key("generation_config.json", "do_sample", true);
  set_json_key("generation_config.json", "temperature", 5.0);
  EXPECT_NE(output_ids({"--seed", "3"}), greedy) << "a temperature of 5 should have sampled other tokens";
  set_json_key("generation_config.json", "min_p", 1.0);
  EXPECT_EQ(output_ids({"--seed", "3"}), greedy);
  EXPECT_NE(output_ids({"--seed", "3", "--min-p", "0"}), greedy);
}

TEST(Cli, TensorParallelCpuRanksGenerateTheSameTokens) {
  const std::vector<std::string> args = {"generate", "--model", kFixture.string(), "--prompt", "Hello, world!",
                                         "--max-new-tokens", "12", "--temperature", "0", "--json"};
  const CommandResult single = run_cli(args, false);
  std::vector<std::string> parallel_args = args;
  parallel_args.insert(parallel_args.end(), {"--tp", "2"});
  const CommandResult parallel = run_cli(parallel_args, false);
  ASSERT_EQ(single.exit_code, 0) << single.output;
  ASSERT_EQ(parallel.exit_code, 0) << parallel.output;
  EXPECT_EQ(nlohmann::json::parse(parallel.output)["output_ids"], nlohmann::json::parse(single.output)["output_ids"]);
  // 8 query heads do not split over 3 ranks: refused with the numbers, before loading.
  std::vector<std::string> bad_args = args;
  bad_args.insert(bad_args.end(), {"--tp", "3"});
  const CommandResult bad = run_cli(bad_args);
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.output.find("tp=3"), std::string::npos) << bad.output;
}

// GPU ranks need one GPU each: without enough (CI has none), --tp on cuda fails before anything
// waits, naming the GPUs it needed (or the missing CUDA backend).
TEST(Cli, TensorParallelGpuRanksNeedAGpuEach) {
  const CommandResult result = run_cli({"generate", "--model", kFixture.string(), "--prompt", "Hi", "--device",
                                        "cuda:7", "--tp", "2"});
  EXPECT_EQ(result.exit_code, 1) << result.output;
  EXPECT_NE(result.output.find("--tp 2"), std::string::npos) << result.output;
  const bool names_gpus = result.output.find("needs cuda:7..cuda:8") != std::string::npos;
  const bool names_backend = result.output.find("without the CUDA backend") != std::string::npos;
  EXPECT_TRUE(names_gpus || names_backend) << result.output;
}

TEST(Cli, CommunicationBenchmarkNeedsItsGpus) {
  const CommandResult result = run_cli({"bench-comm", "--device", "cuda:7", "--tp", "2"});
  EXPECT_EQ(result.exit_code, 1) << result.output;
  const bool names_gpus = result.output.find("needs 9 CUDA devices") != std::string::npos;
  const bool names_backend = result.output.find("without the CUDA backend") != std::string::npos;
  EXPECT_TRUE(names_gpus || names_backend) << result.output;
}

TEST(Cli, CudaDevicesBelongToADeviceMap) {
  const CommandResult alone = run_cli({"bench", "--model", kFixture.string(), "--cuda-devices", "0,0"});
  EXPECT_EQ(alone.exit_code, 1) << alone.output;
  EXPECT_NE(alone.output.find("--cuda-devices"), std::string::npos) << alone.output;
  EXPECT_NE(alone.output.find("--device-map"), std::string::npos) << alone.output;
  const CommandResult negative =
      run_cli({"bench", "--model", kFixture.string(), "--device-map", "auto", "--cuda-devices", "0,-1"});
  EXPECT_NE(negative.exit_code, 0) << negative.output;
  EXPECT_NE(negative.output.find("--cuda-devices"), std::string::npos) << negative.output;
}

// A port per test run, so parallel ctest jobs and reruns do not collide.
std::string free_port(int offset) { return std::to_string(20000 + (::getpid() * 7 + offset) % 20000); }

TEST(Cli, LaunchedRanksOverTcpGenerateTheSameTokens) {
  const std::vector<std::string> generate_args = {SHARDLM_CLI_PATH, "generate", "--model", kFixture.string(), "--prompt",
                                                  "Hello, world!", "--max-new-tokens", "12", "--temperature", "0", "--json"};
  std::vector<std::string> single_args(generate_args.begin() + 1, generate_args.end());
  const CommandResult single = run_cli(single_args, false);
  std::vector<std::string> launch_args = {"launch", "--nproc-per-node", "2", "--master-port", free_port(1), "--"};
  launch_args.insert(launch_args.end(), generate_args.begin(), generate_args.end());
  const CommandResult launched = run_cli(launch_args, false);
  ASSERT_EQ(single.exit_code, 0) << single.output;
  ASSERT_EQ(launched.exit_code, 0) << launched.output;
  // Only rank 0 prints: exactly one JSON object.
  EXPECT_EQ(nlohmann::json::parse(launched.output)["output_ids"], nlohmann::json::parse(single.output)["output_ids"]);
}

TEST(Cli, KilledRankStopsTheWholeGroupWithinSeconds) {
  // Rank 1 is killed half a second into a long generation; rank 0 must fail (not hang in a
  // collective) and launch must report the failure, exiting 1 as for any error.
  const std::string generate = shell_quote(SHARDLM_CLI_PATH) + " generate --prompt 'In the beginning' --max-new-tokens 900 --temperature 0";
  const auto start = std::chrono::steady_clock::now();
  const CommandResult result = run_cli({"launch", "--nproc-per-node", "2", "--master-port", free_port(2), "--", "sh", "-c",
                                        "if [ \"$RANK\" = 1 ]; then (sleep 0.5; kill -9 $$) & fi; exec " + generate});
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(result.exit_code, 1) << result.output;
  EXPECT_LT(seconds, 20.0);
  EXPECT_NE(result.output.find("launch: a worker (pid"), std::string::npos) << result.output;
}

TEST(Cli, PlanShowsTensorParallelShards) {
  const CommandResult result = run_cli({"plan", "--random", "llama3-8b", "--tp", "2", "--json"}, false);
  ASSERT_EQ(result.exit_code, 0) << result.output;
  const nlohmann::json plan = nlohmann::json::parse(result.output);
  EXPECT_EQ(plan["tp"], 2);
  EXPECT_EQ(plan["all_reduces_per_forward"], 64);  // o_proj and down_proj in each of 32 layers
  bool saw_q_proj = false;
  for (const nlohmann::json& row : plan["weights"]) {
    if (row["weight"] != "model.layers.*.self_attn.q_proj.weight") continue;
    saw_q_proj = true;
    EXPECT_EQ(row["rank0_shape"], nlohmann::json({2048, 4096}));
  }
  EXPECT_TRUE(saw_q_proj);
}

TEST(Cli, InfoCountsParameters) {
  const CommandResult result = run_cli({"info", "--model", kFixture.string(), "--json"}, false);
  ASSERT_EQ(result.exit_code, 0) << result.output;
  const nlohmann::json info = nlohmann::json::parse(result.output);
  std::ifstream config_file(kFixture / "config.json");
  const nlohmann::json config = nlohmann::json::parse(config_file);
  const int64_t hidden = config["hidden_size"], vocab = config["vocab_size"], layers = config["num_hidden_layers"];
  // At least the embedding, the untied head and one norm per layer; exact sums are in the io tests.
  EXPECT_GT(info["parameters"].get<int64_t>(), 2 * vocab * hidden + layers * hidden);
  EXPECT_EQ(info["architecture"], "LlamaForCausalLM");
}

TEST(Cli, BadOptionValuesAreRefusedByName) {
  const CommandResult top_p = run_cli({"generate", "--model", kFixture.string(), "--prompt", "x", "--top-p", "2"});
  EXPECT_EQ(top_p.exit_code, 1);
  EXPECT_NE(top_p.output.find("--top-p"), std::string::npos) << top_p.output;
  const CommandResult missing = run_cli({"info", "--model", "/nonexistent/model"});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_NE(missing.output.find("/nonexistent/model"), std::string::npos) << missing.output;
}

TEST_F(BrokenModel, TruncatedSafetensors) {
  fs::resize_file(dir_ / "model.safetensors", fs::file_size(dir_ / "model.safetensors") / 2);
  expect_failure_naming({"generate", "--model", dir_.string(), "--prompt", "x"}, {"model.safetensors"});
}

TEST_F(BrokenModel, MalformedConfig) {
  overwrite("config.json", "{\"architectures\": [\"LlamaForCausalLM\"], \"hidden_size\": ");
  expect_failure_naming({"info", "--model", dir_.string()}, {"config.json"});
}

TEST_F(BrokenModel, UnknownArchitecture) {
  std::ifstream in(dir_ / "config.json");
  nlohmann::json config = nlohmann::json::parse(in);
  config["architectures"] = {"FalconForCausalLM"};
  overwrite("config.json", config.dump());
  expect_failure_naming({"info", "--model", dir_.string()}, {"config.json", "FalconForCausalLM"});
}

TEST_F(BrokenModel, HeadsNotDividingHiddenSize) {
  std::ifstream in(dir_ / "config.json");
  nlohmann::json config = nlohmann::json::parse(in);
  config.erase("head_dim");
  config["num_attention_heads"] = 7;
  config["num_key_value_heads"] = 7;
  overwrite("config.json", config.dump());
  expect_failure_naming({"generate", "--model", dir_.string(), "--prompt", "x"}, {"config.json", "7"});
}

TEST_F(BrokenModel, MissingTensor) {
  // Rename one tensor in the header (same length, so offsets stay valid).
  const fs::path file = dir_ / "model.safetensors";
  std::fstream stream(file, std::ios::in | std::ios::out | std::ios::binary);
  uint64_t header_size = 0;
  stream.read(reinterpret_cast<char*>(&header_size), 8);
  std::string header(header_size, '\0');
  stream.read(header.data(), std::streamsize(header_size));
  const size_t at = header.find("\"model.norm.weight\"");
  ASSERT_NE(at, std::string::npos);
  header.replace(at, 19, "\"model.norX.weight\"");
  stream.seekp(8);
  stream.write(header.data(), std::streamsize(header.size()));
  stream.close();
  expect_failure_naming({"generate", "--model", dir_.string(), "--prompt", "x"}, {"model.norm.weight"});
}

TEST_F(BrokenModel, MalformedTokenizer) {
  overwrite("tokenizer.json", "{\"model\": {\"type\": \"BPE\", \"vocab\": [1, 2");
  expect_failure_naming({"tokenize", "--model", dir_.string(), "hi"}, {"tokenizer.json"});
}

}  // namespace
}  // namespace shardlm
