// Executing a device map on the CPU: layers placed on "cpu" are copied into RAM, layers on "disk"
// are read in place from the mapped checkpoint, and the logits are identical either way.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <sstream>

#include "cli_runner.h"
#include "core/error.h"
#include "model/llama_model.h"

namespace shardlm {
namespace {

namespace fs = std::filesystem;

const fs::path kFixture = fs::path(SHARDLM_FIXTURES_DIR) / "models" / "llama-gqa-llama3rope-f32";

std::vector<float> prompt_logits(const LlamaModel& model) {
  const std::vector<int32_t> prompt = {5, 17, 42, 7, 99, 3, 250, 11};
  KvCache cache = model.make_whole_cache(1, int64_t(prompt.size()));
  std::vector<TokenRow> rows;
  for (size_t i = 0; i < prompt.size(); ++i) rows.push_back({0, int64_t(i), prompt[i], i + 1 == prompt.size()});
  return model.forward(rows, cache);
}

TEST(DeviceMapExecution, ResidentLayersAreCopiesAndGiveIdenticalLogits) {
  const LlamaModel in_place = LlamaModel::load(kFixture);
  LlamaModel mixed = LlamaModel::load(kFixture);
  mixed.keep_layers_in_memory({0});
  const TensorInfo& q0 = mixed.checkpoint().get("model.layers.0.self_attn.q_proj.weight");
  const TensorInfo& q1 = mixed.checkpoint().get("model.layers.1.self_attn.q_proj.weight");
  EXPECT_NE(mixed.weights().layers[0].q_proj.weight.data, static_cast<const void*>(q0.data)) << "layer 0 should be a copy";
  EXPECT_EQ(mixed.weights().layers[1].q_proj.weight.data, static_cast<const void*>(q1.data)) << "layer 1 should be in place";
  EXPECT_EQ(prompt_logits(mixed), prompt_logits(in_place));
  EXPECT_THROW(mixed.keep_layers_in_memory({99}), Error);
}

// The pieces a GPU executor calls when it runs only some layers on the CPU: caches that hold just
// those layers give the same logits as forward() with a cache of every layer.
TEST(DeviceMapExecution, CachesHoldingOnlyTheirLayersGiveTheSameLogits) {
  const LlamaModel model = LlamaModel::load(kFixture);
  const int n_layers = model.config().num_hidden_layers;
  ASSERT_GE(n_layers, 2);
  const std::vector<int> first_half = {0}, rest = [&] {
    std::vector<int> layers;
    for (int il = 1; il < n_layers; ++il) layers.push_back(il);
    return layers;
  }();
  const std::vector<int32_t> prompt = {5, 17, 42, 7, 99, 3, 250, 11};
  const KvCacheShape shape = KvCacheShape::whole_sequences(1, int64_t(prompt.size()));
  KvCache front = model.make_cache(shape, first_half);
  KvCache back = model.make_cache(shape, rest);
  front.assign_whole_sequences();
  back.assign_whole_sequences();
  std::vector<TokenRow> rows;
  for (size_t i = 0; i < prompt.size(); ++i) rows.push_back({0, int64_t(i), prompt[i], i + 1 == prompt.size()});
  std::vector<float> x = model.embed_rows(rows);
  model.run_layers(rows, front, x, 0, 1);
  model.run_layers(rows, back, x, 1, n_layers);
  EXPECT_EQ(model.head_logits(rows, x), prompt_logits(model));
  EXPECT_EQ(front.key_rows(1, 0).store, nullptr) << "a layer the cache does not hold has no storage";
  EXPECT_NE(back.key_rows(1, 0).store, nullptr);
}

TEST(DeviceMapExecution, GenerateWithCpuAndDiskLayersMatchesPlainGeneration) {
  const std::vector<std::string> args = {"generate", "--model", kFixture.string(), "--prompt", "Hello, world!",
                                         "--max-new-tokens", "12", "--temperature", "0", "--json"};
  const CommandResult plain = run_cli(args, false);
  std::vector<std::string> mapped_args = args;
  mapped_args.insert(mapped_args.end(),
                     {"--device-map",
                      R"({"model.embed_tokens": "cpu", "model.layers.0": "cpu", "model.layers.1": "disk", "model.norm": "cpu", "lm_head": "cpu"})",
                      "--max-memory", "cpu=1GiB,disk"});
  const CommandResult mapped = run_cli(mapped_args, true);
  ASSERT_EQ(plain.exit_code, 0) << plain.output;
  ASSERT_EQ(mapped.exit_code, 0) << mapped.output;
  EXPECT_NE(mapped.output.find("cpu: layers 0,"), std::string::npos) << mapped.output;
  EXPECT_NE(mapped.output.find("disk: layers 1"), std::string::npos) << mapped.output;
  const nlohmann::json plain_result = nlohmann::json::parse(plain.output);
  // stdout's one JSON line sits among stderr's "[shardlm] ..." lines.
  std::istringstream lines(mapped.output);
  std::string line, json_line;
  while (std::getline(lines, line))
    if (line.starts_with("{")) json_line = line;
  ASSERT_FALSE(json_line.empty()) << mapped.output;
  EXPECT_EQ(nlohmann::json::parse(json_line)["output_ids"], plain_result["output_ids"]);
}

TEST(DeviceMapExecution, GpuPlacementsNeedACudaDevice) {
  const CommandResult result = run_cli({"generate", "--model", kFixture.string(), "--prompt", "x", "--device-map",
                                        R"({"model.embed_tokens": "cpu", "model.layers.0": "cuda:0", "model.layers.1": "cpu", "model.norm": "cpu", "lm_head": "cpu"})"});
  EXPECT_EQ(result.exit_code, 1) << result.output;
  EXPECT_NE(result.output.find("cuda:0"), std::string::npos) << result.output;
}

TEST(DeviceMapExecution, AnUnknownOffloadModeIsRefusedBeforeLoading) {
  const CommandResult result = run_cli({"generate", "--model", kFixture.string(), "--prompt", "x", "--device-map",
                                        "auto", "--offload-exec", "gpu"});
  EXPECT_EQ(result.exit_code, 1) << result.output;
  EXPECT_NE(result.output.find("--offload-exec"), std::string::npos) << result.output;
  EXPECT_EQ(result.output.find("device map ("), std::string::npos) << "planned before refusing: " << result.output;
}

TEST(DeviceMapExecution, TensorParallelismAndADeviceMapDoNotCombine) {
  const CommandResult result = run_cli({"generate", "--model", kFixture.string(), "--prompt", "x", "--device-map",
                                        "auto", "--tp", "2"});
  EXPECT_EQ(result.exit_code, 1) << result.output;
  EXPECT_NE(result.output.find("--device-map"), std::string::npos) << result.output;
  EXPECT_NE(result.output.find("--tp"), std::string::npos) << result.output;
}

}  // namespace
}  // namespace shardlm
