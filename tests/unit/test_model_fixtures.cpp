// The CPU model against Hugging Face Transformers' own outputs for the same checkpoints: every
// directory under tests/fixtures/models (written by scripts/reference/make_fixtures.py) holds a
// tiny random-weight checkpoint and reference.json with prompt ids, greedy continuations and the
// logits at the last prompt position.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>

#include "logit_comparison.h"
#include "model_fixtures.h"
#include "model/llama_model.h"
#include "runtime/generator.h"
#include "tokenizer/tokenizer.h"

namespace shardlm {
namespace {

namespace fs = std::filesystem;

nlohmann::json read_json(const fs::path& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in);
}

class ModelFixture : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    dir_ = fs::path(SHARDLM_FIXTURES_DIR) / "models" / GetParam();
    reference_ = read_json(dir_ / "reference.json");
  }
  fs::path dir_;
  nlohmann::json reference_;
};

TEST_P(ModelFixture, TokenizerGivesReferencePromptIds) {
  const Tokenizer tokenizer = Tokenizer::from_dir(dir_);
  for (const nlohmann::json& prompt : reference_["prompts"])
    EXPECT_EQ(tokenizer.encode(prompt["text"].get<std::string>()), prompt["prompt_ids"].get<std::vector<int32_t>>())
        << prompt["text"];
}

TEST_P(ModelFixture, LastPositionLogitsMatchTransformers) {
  const LlamaModel model = LlamaModel::load(dir_);
  for (const nlohmann::json& prompt : reference_["prompts"]) {
    const std::vector<int32_t> ids = prompt["prompt_ids"];
    // Our CPU path computes in f32, so it is held to the f32 reference of the same stored weights.
    const std::vector<float> expected = prompt.contains("last_logits_f32") ? prompt["last_logits_f32"] : prompt["last_logits"];
    KvCache cache = model.make_whole_cache(1, int64_t(ids.size()));
    std::vector<TokenRow> rows;
    for (size_t i = 0; i < ids.size(); ++i) rows.push_back({0, int64_t(i), ids[i], i + 1 == ids.size()});
    const std::vector<float> logits = model.forward(rows, cache);
    ASSERT_EQ(logits.size(), expected.size());
    EXPECT_LT(relative_l2_error(logits, expected), 1e-4) << "prompt of " << ids.size() << " tokens";
  }
}

TEST_P(ModelFixture, GreedyContinuationsMatchTransformersAloneAndBatched) {
  const Tokenizer tokenizer = Tokenizer::from_dir(dir_);
  std::vector<std::vector<int32_t>> prompts, expected;
  for (const nlohmann::json& prompt : reference_["prompts"]) {
    prompts.push_back(prompt["prompt_ids"]);
    // bf16/f16 checkpoints carry a continuation computed in f32 from the same weights, which is what
    // the CPU path computes.
    expected.push_back(prompt.contains("greedy_ids_f32") ? prompt["greedy_ids_f32"] : prompt["greedy_ids"]);
  }
  GenerationOptions options;
  options.max_new_tokens = int(expected[0].size());
  // One engine for all the runs: each sequence takes a slot and gives it back when it ends.
  EngineOptions engine_options;
  engine_options.model_dir = dir_;
  engine_options.max_sequences = int(prompts.size());
  for (const std::vector<int32_t>& prompt : prompts)
    engine_options.max_seq_len = std::max(engine_options.max_seq_len, int64_t(prompt.size()) + options.max_new_tokens);
  const std::unique_ptr<Engine> engine = Engine::open(engine_options);
  for (size_t i = 0; i < prompts.size(); ++i) {
    const std::vector<GenerationResult> alone = generate(*engine, tokenizer, {prompts[i]}, options);
    EXPECT_EQ(alone[0].output_ids, expected[i]) << "prompt " << i;
  }
  const std::vector<GenerationResult> batched = generate(*engine, tokenizer, prompts, options);
  for (size_t i = 0; i < prompts.size(); ++i) EXPECT_EQ(batched[i].output_ids, expected[i]) << "batched prompt " << i;
}

INSTANTIATE_TEST_SUITE_P(Fixtures, ModelFixture, ::testing::ValuesIn(model_fixture_names()),
                         model_fixture_test_name);

TEST(ModelFixtures, AllArchitecturesArePresent) {
  // Guards against a fixture directory silently going missing (the suite would just shrink).
  const std::vector<std::string> names = model_fixture_names();
  for (const char* prefix : {"llama-", "mistral-", "qwen2-", "qwen3-", "mixtral-moe-", "qwen2-moe-", "qwen3-moe-"})
    EXPECT_TRUE(std::any_of(names.begin(), names.end(), [&](const std::string& n) { return n.rfind(prefix, 0) == 0; }))
        << "no fixture for " << prefix;
}

}  // namespace
}  // namespace shardlm
