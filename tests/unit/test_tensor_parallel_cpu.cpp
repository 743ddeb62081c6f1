// Tensor parallelism on CPU ranks (threads in one process): TP = 2, 3 and 4 give the same logits
// as TP = 1 (within f32 rounding) and the same greedy tokens, for every fixture architecture (and
// expert parallelism over 2 ranks for the mixture-of-experts ones) and
// for a model written here whose single KV head is replicated across the ranks and whose tied,
// vocabulary-parallel embedding splits over 3 ranks. Bad plans fail before any weight is read.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>

#include "logit_comparison.h"
#include "model_fixtures.h"
#include "per_layer_plan.h"
#include "error_message.h"
#include "model/llama_model.h"
#include "parallel/comm/thread_group.h"
#include "plan/tp_plan.h"
#include "engine/cpu_rank_model.h"
#include "engine/engine.h"
#include "runtime/generator.h"

namespace shardlm {
namespace {

namespace fs = std::filesystem;

struct RunResult {
  std::vector<std::vector<float>> logits;       // last-position logits per prompt
  std::vector<std::vector<int32_t>> greedy_ids;  // 8 greedy tokens per prompt (batched)
};

std::vector<std::vector<int32_t>> test_prompts(const ModelConfig& config) {
  std::vector<std::vector<int32_t>> prompts = {{1}, {}, {}};
  for (int i = 0; i < 13; ++i) prompts[1].push_back((i * 37 + 5) % config.vocab_size);
  for (int i = 0; i < 40; ++i) prompts[2].push_back((i * 101 + 17) % config.vocab_size);
  return prompts;
}

RunResult run_model(LlamaModel model) {
  RunResult result;
  const std::vector<std::vector<int32_t>> prompts = test_prompts(model.config());
  for (const std::vector<int32_t>& prompt : prompts) {
    KvCache cache = model.make_whole_cache(1, int64_t(prompt.size()));
    std::vector<TokenRow> rows;
    for (size_t i = 0; i < prompt.size(); ++i) rows.push_back({0, int64_t(i), prompt[i], i + 1 == prompt.size()});
    result.logits.push_back(model.forward(rows, cache));
  }
  const KvCacheShape kv = KvCacheShape::whole_sequences(int(prompts.size()), 64);
  CpuRankModel rank_model(std::move(model), kv);
  rank_model.update_kv_blocks(whole_sequence_updates(kv));
  const std::vector<SamplingParams> greedy(prompts.size());
  // Greedy decode through the packed-batch path, without the tokenizer.
  std::vector<TokenRow> rows;
  for (size_t s = 0; s < prompts.size(); ++s)
    for (size_t i = 0; i < prompts[s].size(); ++i) rows.push_back({int(s), int64_t(i), prompts[s][i], i + 1 == prompts[s].size()});
  result.greedy_ids.resize(prompts.size());
  for (int step = 0; step < 8; ++step) {
    const std::vector<int32_t> tokens = rank_model.forward_sample(rows, greedy, {});
    rows.clear();
    for (size_t s = 0; s < prompts.size(); ++s) {
      result.greedy_ids[s].push_back(tokens[s]);
      rows.push_back({int(s), int64_t(prompts[s].size()) + step, tokens[s], true});
    }
  }
  return result;
}

RunResult run_tensor_parallel(const fs::path& dir, int tp_size, const TpPlanSource& source) {
  const ModelConfig config = ModelConfig::from_dir(dir);
  const auto checkpoint = std::make_shared<const Checkpoint>(Checkpoint::open(dir));
  const TpPlan plan = resolve_tp_plan(config, weight_specs(*checkpoint), source, tp_size);
  std::vector<RunResult> per_rank(static_cast<size_t>(tp_size));
  ThreadGroup::run(tp_size, [&](Communicator& comm) {
    per_rank[size_t(comm.rank())] = run_model(LlamaModel(config, checkpoint, TensorParallelRank{&plan, comm.rank(), &comm}));
  });
  for (int rank = 1; rank < tp_size; ++rank) {
    EXPECT_EQ(per_rank[size_t(rank)].logits, per_rank[0].logits) << "rank " << rank << " differs from rank 0";
    EXPECT_EQ(per_rank[size_t(rank)].greedy_ids, per_rank[0].greedy_ids);
  }
  return per_rank[0];
}

void expect_same_as_single_rank(const fs::path& dir, int tp_size,
                                const TpPlanSource& source = TpPlanSource::auto_plan()) {
  const RunResult single = run_model(LlamaModel::load(dir));
  const RunResult parallel = run_tensor_parallel(dir, tp_size, source);
  ASSERT_EQ(parallel.logits.size(), single.logits.size());
  for (size_t p = 0; p < single.logits.size(); ++p) {
    ASSERT_EQ(parallel.logits[p].size(), single.logits[p].size());
    EXPECT_LT(relative_l2_error(parallel.logits[p], single.logits[p]), 1e-5) << dir.filename() << " tp=" << tp_size
                                                                             << " prompt " << p;
  }
  EXPECT_EQ(parallel.greedy_ids, single.greedy_ids) << dir.filename() << " tp=" << tp_size;
}

class TensorParallelFixture : public ::testing::TestWithParam<std::string> {};

TEST_P(TensorParallelFixture, TwoAndFourRanksMatchOne) {
  const fs::path dir = fs::path(SHARDLM_FIXTURES_DIR) / "models" / GetParam();
  expect_same_as_single_rank(dir, 2);
  expect_same_as_single_rank(dir, 4);  // 2 KV heads over 4 ranks: each KV head on 2 ranks
  // A mixture-of-experts fixture: whole experts over the ranks too (--enable-expert-parallel).
  if (ModelConfig::from_dir(dir).moe.present()) expect_same_as_single_rank(dir, 2, TpPlanSource::from_argument("auto", true));
}

INSTANTIATE_TEST_SUITE_P(Fixtures, TensorParallelFixture, ::testing::ValuesIn(model_fixture_names()), model_fixture_test_name);

// Writes a tiny tied Llama with `heads` query heads of 8 and one KV head (random f32 weights).
fs::path write_mqa_model(int heads = 12) {
  const fs::path dir =
      fs::temp_directory_path() / ("shardlm-tp-mqa-" + std::to_string(heads) + "-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const int hidden = heads * 8, head_dim = 8, ff = 16 * heads, vocab = 300, layers = 2;
  const nlohmann::json config = {{"architectures", {"LlamaForCausalLM"}}, {"hidden_size", hidden},
                                 {"intermediate_size", ff}, {"num_hidden_layers", layers},
                                 {"num_attention_heads", heads}, {"num_key_value_heads", 1},
                                 {"head_dim", head_dim}, {"vocab_size", vocab}, {"max_position_embeddings", 128},
                                 {"rms_norm_eps", 1e-5}, {"rope_theta", 10000.0}, {"tie_word_embeddings", true},
                                 {"hidden_act", "silu"}};
  std::ofstream(dir / "config.json") << config.dump();

  std::vector<std::pair<std::string, std::vector<int64_t>>> tensors = {{"model.embed_tokens.weight", {vocab, hidden}},
                                                                       {"model.norm.weight", {hidden}}};
  for (int il = 0; il < layers; ++il) {
    const std::string p = "model.layers." + std::to_string(il) + ".";
    tensors.insert(tensors.end(), {{p + "input_layernorm.weight", {hidden}},
                                   {p + "post_attention_layernorm.weight", {hidden}},
                                   {p + "self_attn.q_proj.weight", {heads * head_dim, hidden}},
                                   {p + "self_attn.k_proj.weight", {head_dim, hidden}},
                                   {p + "self_attn.v_proj.weight", {head_dim, hidden}},
                                   {p + "self_attn.o_proj.weight", {hidden, heads * head_dim}},
                                   {p + "mlp.gate_proj.weight", {ff, hidden}},
                                   {p + "mlp.up_proj.weight", {ff, hidden}},
                                   {p + "mlp.down_proj.weight", {hidden, ff}}});
  }
  std::mt19937 rng(5);
  std::normal_distribution<float> normal(0.0f, 0.1f);
  nlohmann::json header = nlohmann::json::object();
  std::vector<float> data;
  for (const auto& [name, shape] : tensors) {
    int64_t count = 1;
    for (int64_t d : shape) count *= d;
    const bool is_norm = shape.size() == 1;
    header[name] = {{"dtype", "F32"}, {"shape", shape},
                    {"data_offsets", {data.size() * 4, (data.size() + size_t(count)) * 4}}};
    for (int64_t i = 0; i < count; ++i) data.push_back(is_norm ? 1.0f + normal(rng) : normal(rng) * 3.0f);
  }
  std::string header_text = header.dump();
  header_text.append((8 - header_text.size() % 8) % 8, ' ');
  std::ofstream out(dir / "model.safetensors", std::ios::binary);
  const uint64_t header_size = header_text.size();
  out.write(reinterpret_cast<const char*>(&header_size), 8);
  out.write(header_text.data(), std::streamsize(header_text.size()));
  out.write(reinterpret_cast<const char*>(data.data()), std::streamsize(data.size() * 4));
  return dir;
}

TEST(TensorParallel, ThreeAndFourRanksWithOneReplicatedKvHeadAndVocabularyParallelEmbedding) {
  const fs::path dir = write_mqa_model();
  expect_same_as_single_rank(dir, 3);
  expect_same_as_single_rank(dir, 4);
  fs::remove_all(dir);
}

// Eight ranks, as on an 8-GPU node: 16 query heads, one KV head on all eight, 300 vocabulary rows
// in blocks of 38 (the last rank holds 34).
TEST(TensorParallel, EightRanksWithOneReplicatedKvHeadMatchOne) {
  const fs::path dir = write_mqa_model(16);
  expect_same_as_single_rank(dir, 8);
  fs::remove_all(dir);
}

// Every layer follows its own plan entries (per_layer_plan.h).
TEST(TensorParallel, PlanWhoseLayersDifferMatchesOneRank) {
  const fs::path dir = fs::path(SHARDLM_FIXTURES_DIR) / "models" / "llama-gqa-llama3rope-f32";
  expect_same_as_single_rank(dir, 2, TpPlanSource::from_json(kPerLayerPlan, "per-layer.json"));
}

// Binds a rank of `plan_json` over TP=2 and returns the error it fails with.
std::string binding_error(const std::string& plan_json) {
  const fs::path dir = fs::path(SHARDLM_FIXTURES_DIR) / "models" / "llama-gqa-llama3rope-f32";
  const ModelConfig config = ModelConfig::from_dir(dir);
  const auto checkpoint = std::make_shared<const Checkpoint>(Checkpoint::open(dir));
  const TpPlan plan =
      resolve_tp_plan(config, weight_specs(*checkpoint), TpPlanSource::from_json(plan_json, "plan.json"), 2);
  return error_message([&] {
    ThreadGroup::run(2, [&](Communicator& comm) {
      LlamaModel model(config, checkpoint, TensorParallelRank{&plan, comm.rank(), &comm});
    });
  });
}

TEST(TensorParallel, LayerPlansWhosePiecesDoNotFitAreRefusedByName) {
  EXPECT_CONTAINS(binding_error(R"({"model.layers.1.self_attn.q_proj": "colwise"})"),
                  "model.layers.1.self_attn.q_proj, k_proj and v_proj must be split alike");
  EXPECT_CONTAINS(binding_error(R"({"model.layers.1.self_attn.o_proj": "rowwise"})"),
                  "model.layers.1.self_attn.o_proj takes 32 input features on this rank, but q_proj gives 64");
  EXPECT_CONTAINS(binding_error(R"({"model.layers.0.mlp.gate_proj": "colwise", "model.layers.0.mlp.up_proj": "colwise",
                                   "model.layers.0.mlp.down_proj": "local_rowwise"})"),
                  "model.layers.0.mlp.down_proj.weight is local_rowwise, but no all_reduce entry sums the output of "
                  "model.layers.0.mlp");
  EXPECT_CONTAINS(binding_error(R"({"model.layers.0.mlp.gate_proj": "colwise", "model.layers.0.mlp.up_proj": "colwise",
                                   "model.layers.0.mlp.down_proj": "rowwise", "model.layers.0.mlp": "all_reduce"})"),
                  "model.layers.0.mlp is all_reduce, so model.layers.0.mlp.down_proj.weight must be local_rowwise, not "
                  "rowwise");
  EXPECT_CONTAINS(binding_error(R"({"model.layers.0.mlp.gate_proj": "colwise", "model.layers.0.mlp.up_proj": "replicate"})"),
                  "model.layers.0.mlp.gate_proj and up_proj must be split alike");
}

TEST(TensorParallel, PlansThatDoNotDivideFailBeforeLoading) {
  const fs::path dir = fs::path(SHARDLM_FIXTURES_DIR) / "models" / "llama-gqa-llama3rope-f32";
  const ModelConfig config = ModelConfig::from_dir(dir);
  const Checkpoint checkpoint = Checkpoint::open(dir);
  EXPECT_ERROR_NAMES(resolve_tp_plan(config, weight_specs(checkpoint), TpPlanSource::auto_plan(), 3), "tp=3",
                     "q_proj");
  // A manual plan whose strategy the CPU ranks do not execute is refused by name when binding.
  const TpPlan packed = resolve_tp_plan(
      config, weight_specs(checkpoint),
      TpPlanSource::from_json(R"({"model.layers.*.self_attn.q_proj": "colwise", "model.layers.*.self_attn.k_proj": "colwise",
                                  "model.layers.*.self_attn.v_proj": "colwise", "model.layers.*.self_attn.o_proj": "rowwise",
                                  "model.layers.*.mlp.gate_proj": "colwise", "model.layers.*.mlp.up_proj": "colwise",
                                  "model.layers.*.mlp.down_proj": "rowwise", "model.norm": "sequence_parallel"})",
                              "plan.json"),
      2);
  const auto shared = std::make_shared<const Checkpoint>(Checkpoint::open(dir));
  EXPECT_ERROR_NAMES(ThreadGroup::run(2,
                                      [&](Communicator& comm) {
                                        LlamaModel model(config, shared, TensorParallelRank{&packed, comm.rank(), &comm});
                                      }),
                     "model.norm.weight", "sequence_parallel");
}

}  // namespace
}  // namespace shardlm
