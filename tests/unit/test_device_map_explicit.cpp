// Explicit device maps (--device-map FILE.json) against the Llama-3-8B shape: a good map is
// followed module by module, and every way a hand-written map can be wrong is refused with a
// message naming the tensor, key or device at fault.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "error_message.h"
#include "plan/device_map/planner.h"

namespace shardlm {
namespace {

namespace fs = std::filesystem;

ModelConfig config_of(const fs::path& file) {
  std::ifstream in(file);
  std::stringstream text;
  text << in.rdbuf();
  return ModelConfig::parse(text.str(), file.string());
}

ModelLayout llama3_8b() {
  return model_layout_from_config(config_of(fs::path(SHARDLM_SOURCE_DIR) / "bench/shapes/llama3-8b.json"), DType::BF16);
}

ModelLayout tied_fixture() {
  return model_layout_from_config(config_of(fs::path(SHARDLM_FIXTURES_DIR) / "models/llama-tied-linear-bf16/config.json"),
                                  DType::BF16);
}

DevicePlan plan_with_map(const ModelLayout& layout, const std::string& json,
                         const std::string& devices = "0=80GiB,1=80GiB,cpu=256GiB") {
  PlanOptions options;
  options.strategy = DeviceMapStrategy::EXPLICIT;
  options.explicit_map = parse_explicit_device_map(json, "map.json");
  return plan_device_map(layout, budgets_from_declaration(devices), options);
}

const ModulePlacement& module_of(const DevicePlan& plan, const std::string& name) {
  for (const ModulePlacement& module : plan.modules)
    if (module.name == name) return module;
  throw std::runtime_error("no module " + name);
}

constexpr const char* kGoodMap = R"({"model.embed_tokens": 0, "model.layers.0-15": "cuda:0",
                                     "model.layers.16-31": 1, "model.norm": "cuda:1", "lm_head": "cpu"})";

TEST(ExplicitMap, GoodMapIsFollowed) {
  const DevicePlan plan = plan_with_map(llama3_8b(), kGoodMap);
  EXPECT_EQ(plan.applied, DeviceMapStrategy::EXPLICIT);
  EXPECT_EQ(plan.placement.embed, DeviceId::cuda(0));
  for (int il = 0; il < 32; ++il) EXPECT_EQ(plan.placement.layers[size_t(il)], DeviceId::cuda(il < 16 ? 0 : 1)) << il;
  EXPECT_EQ(plan.placement.norm, DeviceId::cuda(1));
  EXPECT_EQ(plan.placement.head, DeviceId::cpu());
  EXPECT_EQ(module_of(plan, "model.layers.3").reason, "explicit map: \"model.layers.0-15\"");
  // The head is offloaded, so cuda:0 keeps two staging buffers of it (128256 x 4096 bf16 each).
  EXPECT_EQ(plan.placement.offload_gpu, DeviceId::cuda(0));
  EXPECT_EQ(plan.devices[0].staging_bytes, 2 * 128256LL * 4096 * 2);
}

TEST(ExplicitMap, WholeModelAndParentPrefixes) {
  const DevicePlan everything = plan_with_map(llama3_8b(), R"({"": 1})");
  EXPECT_EQ(everything.placement.embed, DeviceId::cuda(1));
  EXPECT_EQ(everything.placement.head, DeviceId::cuda(1));
  EXPECT_EQ(everything.devices[0].total_bytes(), 0);
  const DevicePlan parents = plan_with_map(llama3_8b(), R"({"model": 0, "lm_head": 1})");
  EXPECT_EQ(parents.placement.layers[31], DeviceId::cuda(0));
  EXPECT_EQ(parents.placement.head, DeviceId::cuda(1));
  // Parts of one layer may have their own keys as long as they agree on the device.
  const DevicePlan parts = plan_with_map(
      llama3_8b(), R"({"model.embed_tokens": 0, "model.layers.0.self_attn": 0, "model.layers.0.mlp": 0,
                       "model.layers.0.input_layernorm": 0, "model.layers.0.post_attention_layernorm": 0,
                       "model.layers.1-31": 0, "model.norm": 0, "lm_head": 0})");
  EXPECT_EQ(parts.placement.layers[0], DeviceId::cuda(0));
}

TEST(ExplicitMap, ReadFromAFile) {
  const fs::path file = fs::temp_directory_path() / ("shardlm-map-" + std::to_string(::getpid()) + ".json");
  std::ofstream(file) << kGoodMap;
  const ExplicitDeviceMap map = read_explicit_device_map(file);
  fs::remove(file);
  EXPECT_EQ(map.source, file.string());
  EXPECT_EQ(map.entries.size(), 1u + 16 + 16 + 1 + 1);  // ranges expand to one entry per layer
  EXPECT_ERROR_NAMES(read_explicit_device_map("/nonexistent/map.json"), "--device-map", "/nonexistent/map.json");
}

TEST(ExplicitMap, UncoveredTensorIsNamed) {
  EXPECT_ERROR_NAMES(plan_with_map(llama3_8b(), R"({"model": 0})"), "map.json", "lm_head.weight", "not covered");
  EXPECT_ERROR_NAMES(plan_with_map(llama3_8b(), R"({"model.embed_tokens": 0, "model.layers.0-30": 0,
                                                    "model.norm": 0, "lm_head": 0})"),
                     "model.layers.31.input_layernorm.weight", "not covered");
}

TEST(ExplicitMap, DoublyCoveredTensorIsNamed) {
  EXPECT_ERROR_NAMES(plan_with_map(llama3_8b(), R"({"": 0, "model.layers.3": 1})"),
                     "model.layers.3.input_layernorm.weight", "covered twice", "by \"\" and by \"model.layers.3\"");
  // Even when both keys say the same device: a map with overlaps is ambiguous to read.
  EXPECT_ERROR_NAMES(plan_with_map(llama3_8b(), R"({"model": 0, "model.norm": 0, "lm_head": 0})"),
                     "model.norm.weight", "covered twice");
}

TEST(ExplicitMap, SplitLayerIsRefused) {
  EXPECT_ERROR_NAMES(
      plan_with_map(llama3_8b(), R"({"model.embed_tokens": 0, "model.layers.0-2": 0, "model.layers.3.self_attn": 0,
                                     "model.layers.3.mlp": "cpu", "model.layers.3.input_layernorm": 0,
                                     "model.layers.3.post_attention_layernorm": 0, "model.layers.4-31": 0,
                                     "model.norm": 0, "lm_head": 0})"),
      "model.layers.3 would be split", "model.layers.3.mlp.gate_proj.weight on cpu", "a decoder layer must stay on one device");
}

TEST(ExplicitMap, UnknownDevicesAreRefused) {
  EXPECT_ERROR_NAMES(plan_with_map(llama3_8b(), R"({"": "cuda:5"})"), "model.embed_tokens on cuda:5",
                     "not among the devices (cuda:0, cuda:1, cpu)");
  EXPECT_ERROR_NAMES(plan_with_map(llama3_8b(), R"({"model": 0, "lm_head": "disk"})"), "lm_head on disk",
                     "not among the devices");
  EXPECT_ERROR_NAMES(plan_with_map(llama3_8b(), R"({"model": 0, "lm_head": "tpu"})"), "map.json: \"lm_head\"", "\"tpu\"");
  EXPECT_ERROR_NAMES(plan_with_map(llama3_8b(), R"({"model": 0, "lm_head": -1})"), "\"lm_head\"", "integer -1");
}

TEST(ExplicitMap, KeysThatMatchNothingAreRefused) {
  EXPECT_ERROR_NAMES(plan_with_map(llama3_8b(), R"({"": 0, "model.layers.40": 1})"),
                     "\"model.layers.40\" matches no weight");
  EXPECT_ERROR_NAMES(plan_with_map(llama3_8b(), R"({"model.embed_tokens": 0, "model.layers.0-29": 0,
                                                    "model.layers.30-33": 1, "model.norm": 1, "lm_head": 1})"),
                     "\"model.layers.30-33\" matches no weight", "model.layers.32 does not exist");
  EXPECT_ERROR_NAMES(plan_with_map(llama3_8b(), R"({"": 0, "model.embed": 1})"), "\"model.embed\"");
}

TEST(ExplicitMap, OverfullDeviceSaysByHowMuch) {
  // 16,060,522,496 bytes of weights (14.96 GiB) plus caches and buffers on a 10 GiB GPU.
  EXPECT_ERROR_NAMES(plan_with_map(llama3_8b(), R"({"": 0})", "0=10GiB,cpu=64GiB"), "map.json", "cuda:0 would hold",
                     "weights 14.96 GiB", "over its budget of 10.00 GiB");
}

TEST(ExplicitMap, TiedHeadGoesWithTheEmbedding) {
  const DevicePlan plan = plan_with_map(tied_fixture(), R"({"model.embed_tokens": 1, "model.layers": 0, "model.norm": 0})");
  EXPECT_EQ(plan.placement.head, DeviceId::cuda(1));
  EXPECT_EQ(module_of(plan, "lm_head").reason, "explicit map: \"model.embed_tokens\" (tied to model.embed_tokens)");
  EXPECT_NO_THROW(plan_with_map(tied_fixture(), R"({"model.embed_tokens": 1, "model.layers": 0, "model.norm": 0,
                                                   "lm_head": 1})"));
  EXPECT_ERROR_NAMES(plan_with_map(tied_fixture(), R"({"model.embed_tokens": 0, "model.layers": 0, "model.norm": 0,
                                                      "lm_head": 1})"),
                     "lm_head is tied to model.embed_tokens", "\"lm_head\" puts it on cuda:1",
                     "model.embed_tokens is on cuda:0");
}

TEST(ExplicitMap, MalformedMapsAreRefused) {
  EXPECT_ERROR_NAMES(parse_explicit_device_map(R"({"": 0,})", "map.json"), "map.json", "not valid JSON");
  EXPECT_ERROR_NAMES(parse_explicit_device_map(R"([0, 1])", "map.json"), "map.json", "must be a JSON object");
  EXPECT_ERROR_NAMES(parse_explicit_device_map(R"({})", "map.json"), "map.json", "empty");
  EXPECT_ERROR_NAMES(parse_explicit_device_map(R"({"": true})", "map.json"), "\"\"", "true");
  EXPECT_ERROR_NAMES(parse_explicit_device_map(R"({"model.layers.5-2": 0})", "map.json"), "\"model.layers.5-2\"",
                     "A <= B");
  EXPECT_ERROR_NAMES(parse_explicit_device_map(R"({"model.layers.x-2": 0})", "map.json"), "\"model.layers.x-2\"");
  EXPECT_ERROR_NAMES(parse_explicit_device_map(R"({"lm_head": 0, "lm_head": 1})", "map.json"), "more than once");
}

TEST(ExplicitMap, StrategyNames) {
  EXPECT_EQ(parse_device_map_strategy("auto"), DeviceMapStrategy::AUTO);
  EXPECT_EQ(parse_device_map_strategy("balanced_low_0"), DeviceMapStrategy::BALANCED_LOW_0);
  EXPECT_EQ(parse_device_map_strategy("sequential"), DeviceMapStrategy::SEQUENTIAL);
  EXPECT_FALSE(parse_device_map_strategy("map.json").has_value());
  EXPECT_FALSE(parse_device_map_strategy("Balanced").has_value());
}

}  // namespace
}  // namespace shardlm
