// The units the planner places and their sizes: tensors grouped by name prefix, bytes by dtype
// (narrowed by a load dtype, never widened), the tied head without bytes of its own, and the
// synthetic tensor list of a --random shape equal to what real checkpoints hold.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "error_message.h"
#include "plan/device_map/model_layout.h"

namespace shardlm {
namespace {

namespace fs = std::filesystem;

const fs::path kModels = fs::path(SHARDLM_FIXTURES_DIR) / "models";

std::string read_text(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

ModelConfig shape_config(const std::string& shape) {
  const fs::path file = fs::path(SHARDLM_SOURCE_DIR) / "bench" / "shapes" / (shape + ".json");
  return ModelConfig::parse(read_text(file), file.string());
}

const ModuleWeights& module_named(const ModelLayout& layout, const std::string& name) {
  for (const ModuleWeights& module : layout.modules)
    if (module.name == name) return module;
  throw std::runtime_error("no module " + name);
}

TEST(ModelLayout, RandomShapesListTheTensorsOfEveryFixtureCheckpoint) {
  for (const fs::directory_entry& entry : fs::directory_iterator(kModels)) {
    const ModelConfig config = ModelConfig::from_dir(entry.path());
    const Checkpoint checkpoint = Checkpoint::open(entry.path());
    std::vector<std::pair<std::string, std::vector<int64_t>>> expected, stored;
    for (const TensorShape& tensor : llama_tensor_shapes(config)) expected.emplace_back(tensor.name, tensor.shape);
    for (const auto& [name, tensor] : checkpoint.tensors()) stored.emplace_back(name, tensor.shape);
    std::sort(expected.begin(), expected.end());
    EXPECT_EQ(expected, stored) << entry.path();
  }
}

TEST(ModelLayout, TiedBf16FixtureBytesByHand) {
  // hidden 64, 4 heads x 16, 2 kv heads (kv_dim 32), ffn 160, vocab 715, 2 layers, bf16, tied.
  const fs::path dir = kModels / "llama-tied-linear-bf16";
  const ModelLayout layout = model_layout_from_checkpoint(ModelConfig::from_dir(dir), Checkpoint::open(dir), std::nullopt);
  ASSERT_EQ(layout.modules.size(), 5u);  // embed, 2 layers, norm, head
  EXPECT_TRUE(layout.tied_head);
  EXPECT_EQ(layout.modules[0].name, "model.embed_tokens");
  EXPECT_EQ(layout.modules[0].weight_bytes, 715 * 64 * 2);
  // norms 2*64, q 64*64, k and v 32*64 each, o 64*64, gate/up/down 3*160*64 = 43136 elements.
  EXPECT_EQ(module_named(layout, "model.layers.1").weight_bytes, 43136 * 2);
  EXPECT_EQ(module_named(layout, "model.layers.1").layer, 1);
  EXPECT_EQ(module_named(layout, "model.layers.1").tensors.size(), 9u);
  EXPECT_EQ(module_named(layout, "model.norm").weight_bytes, 64 * 2);
  const ModuleWeights& head = module_named(layout, "lm_head");
  EXPECT_EQ(head.kind, ModuleKind::HEAD);
  EXPECT_EQ(head.weight_bytes, 0);  // it is the embedding table
  EXPECT_TRUE(head.tensors.empty());
  // Every byte of the file's data section is counted once: 91520 + 2 * 86272 + 128.
  EXPECT_EQ(layout.total_weight_bytes(), 264192);
  EXPECT_EQ(layout.kv_bytes_per_token, 2 * 32 * 2);
}

TEST(ModelLayout, LoadDtypeNarrowsButNeverWidens) {
  const fs::path f32_dir = kModels / "qwen2-bias-yarn-f32";
  const ModelConfig f32_config = ModelConfig::from_dir(f32_dir);
  const Checkpoint f32_checkpoint = Checkpoint::open(f32_dir);
  const ModelLayout stored = model_layout_from_checkpoint(f32_config, f32_checkpoint, std::nullopt);
  const ModelLayout narrowed = model_layout_from_checkpoint(f32_config, f32_checkpoint, DType::BF16);
  EXPECT_EQ(narrowed.total_weight_bytes() * 2, stored.total_weight_bytes());
  EXPECT_EQ(module_named(narrowed, "model.layers.2").weight_bytes * 2, module_named(stored, "model.layers.2").weight_bytes);

  const fs::path bf16_dir = kModels / "llama-tied-linear-bf16";
  const ModelConfig bf16_config = ModelConfig::from_dir(bf16_dir);
  const Checkpoint bf16_checkpoint = Checkpoint::open(bf16_dir);
  EXPECT_EQ(model_layout_from_checkpoint(bf16_config, bf16_checkpoint, DType::F32).total_weight_bytes(),
            model_layout_from_checkpoint(bf16_config, bf16_checkpoint, std::nullopt).total_weight_bytes());
}

TEST(ModelLayout, ShardedCheckpointGroupsAcrossFiles) {
  const fs::path dir = kModels / "llama-sharded-f32";
  const ModelConfig config = ModelConfig::from_dir(dir);
  const ModelLayout from_checkpoint = model_layout_from_checkpoint(config, Checkpoint::open(dir), std::nullopt);
  const ModelLayout from_config = model_layout_from_config(config, DType::F32);
  ASSERT_EQ(from_checkpoint.modules.size(), from_config.modules.size());
  for (size_t i = 0; i < from_config.modules.size(); ++i) {
    EXPECT_EQ(from_checkpoint.modules[i].name, from_config.modules[i].name);
    EXPECT_EQ(from_checkpoint.modules[i].weight_bytes, from_config.modules[i].weight_bytes);
  }
}

TEST(ModelLayout, Llama3_8BShapeByHand) {
  const ModelLayout layout = model_layout_from_config(shape_config("llama3-8b"), DType::BF16);
  ASSERT_EQ(layout.modules.size(), 35u);  // embed, 32 layers, norm, head
  EXPECT_FALSE(layout.tied_head);
  // q and o 4096x4096, k and v 1024x4096, gate/up/down 14336x4096, two norms of 4096; bf16.
  const int64_t layer = (2 * 4096LL * 4096 + 2 * 1024LL * 4096 + 3 * 14336LL * 4096 + 2 * 4096) * 2;
  EXPECT_EQ(layer, 436224000);
  EXPECT_EQ(module_named(layout, "model.layers.31").weight_bytes, layer);
  EXPECT_EQ(module_named(layout, "model.embed_tokens").weight_bytes, 128256LL * 4096 * 2);
  EXPECT_EQ(module_named(layout, "lm_head").weight_bytes, 128256LL * 4096 * 2);
  EXPECT_EQ(layout.total_weight_bytes(), 16060522496);  // 8.03 B parameters in bf16
  EXPECT_EQ(layout.kv_bytes_per_token, 2 * 8 * 128 * 2);  // K and V, 8 kv heads x 128, bf16
  // 10 * 4096 + 2 * 6144 (qkv) + 4 * 4096 (q, attention out) + 6 * 14336 (gate_up, SwiGLU)
  EXPECT_EQ(layout.activation_bytes_per_row, 155648);
  EXPECT_EQ(layout.logits_bytes_per_sequence, 4096 * 2 + 128256 * 4);
}

// A scratch model directory holding a config and a bf16 checkpoint of the given tensors (zeros).
class ScratchModel : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("shardlm-layout-" + std::to_string(::getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
    fs::copy_file(kModels / "llama-tied-linear-bf16" / "config.json", dir_ / "config.json");
    config_ = ModelConfig::from_dir(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  void write_checkpoint(const std::vector<TensorShape>& tensors) {
    nlohmann::json header = nlohmann::json::object();
    int64_t offset = 0;
    for (const TensorShape& tensor : tensors) {
      int64_t bytes = 2;
      for (int64_t extent : tensor.shape) bytes *= extent;
      header[tensor.name] = {{"dtype", "BF16"}, {"shape", tensor.shape}, {"data_offsets", {offset, offset + bytes}}};
      offset += bytes;
    }
    std::string text = header.dump();
    text.resize((text.size() + 7) / 8 * 8, ' ');
    std::ofstream out(dir_ / "model.safetensors", std::ios::binary);
    const uint64_t length = text.size();
    out.write(reinterpret_cast<const char*>(&length), 8);
    out << text << std::string(size_t(offset), '\0');
  }

  fs::path dir_;
  ModelConfig config_;
};

TEST_F(ScratchModel, TensorOutsideTheUnitsIsNamed) {
  std::vector<TensorShape> tensors = llama_tensor_shapes(config_);
  tensors.push_back({"model.rotary_emb.inv_freq", {8}});
  write_checkpoint(tensors);
  EXPECT_ERROR_NAMES(model_layout_from_checkpoint(config_, Checkpoint::open(dir_), std::nullopt),
                     "model.rotary_emb.inv_freq", "cannot be placed");
}

TEST_F(ScratchModel, LayerBeyondTheConfigIsNamed) {
  std::vector<TensorShape> tensors = llama_tensor_shapes(config_);
  tensors.push_back({"model.layers.2.input_layernorm.weight", {64}});  // the config has layers 0-1
  write_checkpoint(tensors);
  EXPECT_ERROR_NAMES(model_layout_from_checkpoint(config_, Checkpoint::open(dir_), std::nullopt),
                     "model.layers.2.input_layernorm.weight", "model.layers.0-1");
}

TEST_F(ScratchModel, MissingLayerIsNamed) {
  std::vector<TensorShape> tensors;
  for (const TensorShape& tensor : llama_tensor_shapes(config_))
    if (!tensor.name.starts_with("model.layers.1.")) tensors.push_back(tensor);
  write_checkpoint(tensors);
  EXPECT_ERROR_NAMES(model_layout_from_checkpoint(config_, Checkpoint::open(dir_), std::nullopt), "model.layers.1");
}

TEST_F(ScratchModel, StoredHeadOfATiedModelIsLeftOut) {
  std::vector<TensorShape> tensors = llama_tensor_shapes(config_);
  tensors.push_back({"lm_head.weight", {715, 64}});  // some exports keep it; the model never reads it
  write_checkpoint(tensors);
  const ModelLayout layout = model_layout_from_checkpoint(config_, Checkpoint::open(dir_), std::nullopt);
  EXPECT_EQ(module_named(layout, "lm_head").weight_bytes, 0);
  EXPECT_EQ(layout.total_weight_bytes(), 264192);
}

}  // namespace
}  // namespace shardlm
