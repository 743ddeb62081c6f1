// Mixture-of-experts models on the CPU (Mixtral, Qwen2-MoE with its shared expert, Qwen3-MoE with a
// dense layer), on tiny random checkpoints written here, checked against what must hold:
// - the three ways experts are stored load to the same model (bit-identical logits);
// - when every expert of a layer is the same MLP, the layer computes that MLP (top-k weights that
//   sum to 1), and Qwen2-MoE's shared expert with a zero gate adds half of its own MLP: compared with
//   the dense Llama/Qwen2 models, which the reference fixtures check against Transformers;
// - a row's experts depend on that row alone (batched = each sequence alone);
// - tensor parallelism (experts split like MLPs, Transformers 5's packed plan and 4.5x's per-expert
//   plan with Mixtral's names) and expert parallelism (whole experts per rank) give one rank's logits;
// - bad plans and checkpoints are refused by name.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <vector>

#include "error_message.h"
#include "logit_comparison.h"
#include "tiny_moe_model.h"
#include "model/cpu_layer_ops.h"
#include "model/llama_model.h"
#include "model/routed_experts.h"
#include "ops/cpu/expert_routing.h"
#include "parallel/comm/thread_group.h"
#include "plan/parameter_count.h"
#include "plan/tp_plan.h"

namespace shardlm {
namespace {

namespace fs = std::filesystem;
using test::ExpertLayout;
using test::TinyMoe;
using test::TinyTensor;

const std::vector<std::vector<int32_t>> kPrompts = {{1}, {1, 17, 40, 5, 88, 23, 61, 9, 30}, {
    1, 4, 8, 15, 16, 23, 42, 77, 90, 12, 33, 54, 65, 70, 81, 2, 3, 95, 50, 49, 48, 11, 22}};

// Every row's logits for each prompt, run alone: (rows, vocab) per prompt.
std::vector<std::vector<float>> prompt_logits(const LlamaModel& model) {
  std::vector<std::vector<float>> logits;
  for (const std::vector<int32_t>& prompt : kPrompts) {
    KvCache cache = model.make_whole_cache(1, int64_t(prompt.size()));
    std::vector<TokenRow> rows;
    for (size_t i = 0; i < prompt.size(); ++i) rows.push_back({0, int64_t(i), prompt[i], true});
    logits.push_back(model.forward(rows, cache));
  }
  return logits;
}

// The prompts as one batch (each its own sequence), last-row logits per prompt.
std::vector<std::vector<float>> batched_last_logits(const LlamaModel& model) {
  KvCache cache = model.make_whole_cache(int(kPrompts.size()), 32);
  std::vector<TokenRow> rows;
  for (size_t s = 0; s < kPrompts.size(); ++s)
    for (size_t i = 0; i < kPrompts[s].size(); ++i) rows.push_back({int(s), int64_t(i), kPrompts[s][i], i + 1 == kPrompts[s].size()});
  const std::vector<float> all = model.forward(rows, cache);
  const size_t vocab = size_t(model.config().vocab_size);
  std::vector<std::vector<float>> logits;
  for (size_t s = 0; s < kPrompts.size(); ++s) logits.emplace_back(all.begin() + long(s * vocab), all.begin() + long((s + 1) * vocab));
  return logits;
}

void expect_close(const std::vector<std::vector<float>>& actual, const std::vector<std::vector<float>>& expected,
                  double tolerance, const std::string& what) {
  ASSERT_EQ(actual.size(), expected.size()) << what;
  for (size_t p = 0; p < expected.size(); ++p) {
    ASSERT_EQ(actual[p].size(), expected[p].size()) << what;
    EXPECT_LT(relative_l2_error(actual[p], expected[p]), tolerance) << what << ", prompt " << p;
  }
}

TinyMoe mixtral() {
  TinyMoe m;
  m.architecture = "MixtralForCausalLM";
  m.layers = 2;
  return m;
}

TinyMoe qwen2_moe() {
  TinyMoe m;
  m.architecture = "Qwen2MoeForCausalLM";
  m.layers = 2;
  m.shared_ff = 24;
  m.norm_topk_prob = false;
  return m;
}

TinyMoe qwen3_moe() {
  TinyMoe m;  // three layers, the middle one dense
  m.mlp_only_layers = {1};
  return m;
}

TEST(MoeRouting, SoftmaxTopKAndRenormalisation) {
  // Probabilities 1/8, 2/8, 4/8, 1/8.
  const std::vector<float> logits = {0.0f, std::log(2.0f), std::log(4.0f), 0.0f};
  const cpu::ExpertRoutes normalised = cpu::route_top_k(logits.data(), 1, 4, 2, true);
  EXPECT_EQ(normalised.experts, (std::vector<int32_t>{2, 1}));
  EXPECT_NEAR(normalised.weights[0], 4.0f / 6.0f, 1e-6f);
  EXPECT_NEAR(normalised.weights[1], 2.0f / 6.0f, 1e-6f);
  const cpu::ExpertRoutes raw = cpu::route_top_k(logits.data(), 1, 4, 3, false);
  EXPECT_EQ(raw.experts, (std::vector<int32_t>{2, 1, 0}));  // a tie goes to the lower expert id
  EXPECT_NEAR(raw.weights[0], 0.5f, 1e-6f);
  EXPECT_NEAR(raw.weights[2], 0.125f, 1e-6f);
}

// One row x = (1, 0) through a sparse MLP of three distinct one-unit experts, by hand: the router's
// logits are (0, ln 2, ln 4), so experts 2 and 1 are chosen with probabilities 4/7 and 2/7.
TEST(MoeOps, DistinctExpertsAndTheSharedExpertGateByHand) {
  const auto view = [](const std::vector<float>& values, int64_t rows, int64_t cols) {
    return WeightView{DType::F32, values.data(), rows, cols, 0};
  };
  const auto linear = [&](const std::vector<float>& values, int64_t rows, int64_t cols) {
    Linear l;
    l.weight = view(values, rows, cols);
    return l;
  };
  const std::vector<float> router = {0, 0, std::log(2.0f), 0, std::log(4.0f), 0};
  const std::vector<float> unused = {5, 0}, unused_down = {7, 7};
  const std::vector<float> gate1 = {1, 0}, up1 = {2, 0}, down1 = {1, 0};  // writes the first feature
  const std::vector<float> gate2 = {2, 0}, up2 = {1, 0}, down2 = {0, 1};  // writes the second
  const std::vector<float> shared_gate = {0.5f, 0}, shared = {1, 0}, shared_down = {1, 1};
  SparseMoeWeights moe;
  moe.router = linear(router, 3, 2);
  moe.top_k = 2;
  moe.experts = {{linear(unused, 1, 2), linear(unused, 1, 2), linear(unused_down, 2, 1)},
                 {linear(gate1, 1, 2), linear(up1, 1, 2), linear(down1, 2, 1)},
                 {linear(gate2, 1, 2), linear(up2, 1, 2), linear(down2, 2, 1)}};
  moe.shared_expert = ExpertWeights{linear(shared, 1, 2), linear(shared, 1, 2), linear(shared_down, 2, 1)};
  moe.shared_expert_gate = linear(shared_gate, 1, 2);

  ModelConfig config;
  config.hidden_size = 2;
  const RopeFrequencies rope;
  const std::vector<int64_t> no_layers;
  KvCache cache(no_layers, KvCacheShape::whole_sequences(1, 1));
  const std::vector<TokenRow> rows = {{0, 0, 0, true}};
  const auto silu = [](float v) { return v / (1.0f + std::exp(-v)); };
  const float shared_out = 1.0f / (1.0f + std::exp(-0.5f)) * silu(1) * 1;
  for (const bool normalise : {true, false}) {
    moe.norm_topk_prob = normalise;
    std::vector<float> residual = {0, 0};
    CpuLayerOps ops(config, rope, nullptr, rows, cache, residual);
    const std::vector<float> normed = {1, 0};
    const cpu::ExpertRoutes routes = ops.route(normed, moe);
    EXPECT_EQ(routes.experts, (std::vector<int32_t>{2, 1}));
    ops.add_experts(normed, routes, moe);
    const float w2 = normalise ? 2.0f / 3.0f : 4.0f / 7.0f, w1 = normalise ? 1.0f / 3.0f : 2.0f / 7.0f;
    EXPECT_NEAR(residual[0], w1 * silu(1) * 2 + shared_out, 1e-6f) << normalise;
    EXPECT_NEAR(residual[1], w2 * silu(2) * 1 + shared_out, 1e-6f) << normalise;
  }
}

// A prompt long enough that its (row, expert) pairs go through the experts in several groups
// (routed_experts.cpp) gives every row exactly what it gets alone, also where every row chose
// expert 0, whose 2,100 pairs then go through in two pieces.
TEST(MoeOps, ManyRowsThroughTheExpertsInGroupsEqualEachRowAlone) {
  const int experts = 8, top_k = 4;
  const int64_t dim = 16, ff = 8, n_rows = 2100;  // 8,400 pairs
  std::mt19937 rng(3);
  std::normal_distribution<float> normal(0.0f, 0.5f);
  const auto random = [&](size_t n) {
    std::vector<float> values(n);
    for (float& value : values) value = normal(rng);
    return values;
  };
  std::vector<std::vector<float>> storage;
  const auto linear = [&](int64_t rows, int64_t cols) {
    storage.push_back(random(size_t(rows * cols)));
    Linear l;
    l.weight = WeightView{DType::F32, storage.back().data(), rows, cols, 0};
    return l;
  };
  storage.reserve(3 * experts + 1);
  SparseMoeWeights moe;
  moe.router = linear(experts, dim);
  moe.top_k = top_k;
  for (int e = 0; e < experts; ++e) moe.experts.push_back({linear(ff, dim), linear(ff, dim), linear(dim, ff)});
  const std::vector<float> rows = random(size_t(n_rows * dim));
  std::vector<float> logits = random(size_t(n_rows * experts));
  for (int64_t row = 0; row < n_rows; ++row) logits[size_t(row * experts)] += 10.0f;
  const cpu::ExpertRoutes routes = cpu::route_top_k(logits.data(), n_rows, experts, top_k, true);
  ASSERT_EQ(std::count(routes.experts.begin(), routes.experts.end(), 0), n_rows);
  std::vector<float> together(size_t(n_rows * dim), 0.0f);
  add_routed_experts(rows.data(), routes, moe, together.data());
  for (int64_t row = 0; row < n_rows; ++row) {
    cpu::ExpertRoutes alone{top_k, {routes.experts.begin() + row * top_k, routes.experts.begin() + (row + 1) * top_k},
                            {routes.weights.begin() + row * top_k, routes.weights.begin() + (row + 1) * top_k}};
    std::vector<float> out(size_t(dim), 0.0f);
    add_routed_experts(rows.data() + row * dim, alone, moe, out.data());
    ASSERT_EQ(out, std::vector<float>(together.begin() + row * dim, together.begin() + (row + 1) * dim)) << "row " << row;
  }
}

TEST(MoeCheckpoint, EveryExpertLayoutLoadsToTheSameModel) {
  for (TinyMoe m : {mixtral(), qwen2_moe(), qwen3_moe()}) {
    m.layout = ExpertLayout::QWEN_PER_EXPERT;
    const auto reference = prompt_logits(LlamaModel::load(test::write_tiny_moe(m, "qwen-names")));
    m.layout = ExpertLayout::FUSED;
    EXPECT_EQ(prompt_logits(LlamaModel::load(test::write_tiny_moe(m, "fused"))), reference) << m.architecture;
    if (!m.mixtral()) continue;
    m.layout = ExpertLayout::MIXTRAL_PER_EXPERT;
    EXPECT_EQ(prompt_logits(LlamaModel::load(test::write_tiny_moe(m, "mixtral-names"))), reference);
  }
}

// The dense model whose MLP is expert 0 of every layer (Mixtral) or, for Qwen2-MoE, expert 0 and
// the shared expert side by side with the shared down projection halved.
fs::path write_dense_equivalent(const TinyMoe& m, const std::string& architecture) {
  std::vector<TinyTensor> moe = test::tiny_moe_tensors(m), dense;
  std::map<std::string, const TinyTensor*> by_name;
  for (const TinyTensor& t : moe) by_name[t.name] = &t;
  for (const TinyTensor& t : moe)
    if (t.name.find(".mlp.") == std::string::npos) dense.push_back(t);
  const int ff = m.expert_ff + m.shared_ff;
  for (int il = 0; il < m.layers; ++il) {
    const std::string p = "model.layers." + std::to_string(il) + ".mlp.";
    const auto expert = [&](const std::string& projection) { return by_name.at(p + "experts.0." + projection + ".weight")->values; };
    const auto shared = [&](const std::string& projection) {
      return m.shared_ff > 0 ? by_name.at(p + "shared_expert." + projection + ".weight")->values : std::vector<float>{};
    };
    for (const char* projection : {"gate_proj", "up_proj"}) {
      std::vector<float> rows = expert(projection), extra = shared(projection);
      rows.insert(rows.end(), extra.begin(), extra.end());  // more intermediate rows
      dense.push_back({p + projection + ".weight", {ff, m.hidden}, rows});
    }
    const std::vector<float> down = expert("down_proj"), shared_down = shared("down_proj");
    std::vector<float> columns;
    for (int row = 0; row < m.hidden; ++row) {
      columns.insert(columns.end(), down.begin() + row * m.expert_ff, down.begin() + (row + 1) * m.expert_ff);
      for (int c = 0; c < m.shared_ff; ++c) columns.push_back(0.5f * shared_down[size_t(row * m.shared_ff + c)]);
    }
    dense.push_back({p + "down_proj.weight", {m.hidden, ff}, columns});
  }
  nlohmann::json config = test::tiny_moe_config(m);
  config["architectures"] = {architecture};
  config["intermediate_size"] = ff;
  const fs::path dir = test::scratch_dir("dense-" + architecture);
  std::ofstream(dir / "config.json") << config.dump();
  test::write_tiny_safetensors(dir / "model.safetensors", dense);
  return dir;
}

TEST(MoeModel, IdenticalExpertsComputeTheirMlp) {
  TinyMoe m = mixtral();  // top-2 of 8, renormalised: the weights sum to 1
  m.identical_experts = true;
  const auto sparse = prompt_logits(LlamaModel::load(test::write_tiny_moe(m, "identical")));
  const auto dense = prompt_logits(LlamaModel::load(write_dense_equivalent(m, "LlamaForCausalLM")));
  expect_close(sparse, dense, 1e-5, "Mixtral with identical experts vs Llama");
}

TEST(MoeModel, QwenSharedExpertWithAZeroGateAddsHalfItsMlp) {
  TinyMoe m = qwen2_moe();
  m.identical_experts = true;
  m.top_k = m.experts;  // without renormalisation, the weights of all experts sum to 1
  m.shared_gate_scale = 0.0f;
  const auto sparse = prompt_logits(LlamaModel::load(test::write_tiny_moe(m, "shared")));
  const auto dense = prompt_logits(LlamaModel::load(write_dense_equivalent(m, "Qwen2ForCausalLM")));
  expect_close(sparse, dense, 1e-5, "Qwen2-MoE with identical experts vs Qwen2");
}

TEST(MoeModel, DifferentExpertsChangeTheOutput) {
  // The identical-experts tests would pass if routing were ignored; with distinct experts, top-2
  // differs from top-8 and renormalising differs from not.
  TinyMoe m = qwen3_moe();
  const auto top2 = prompt_logits(LlamaModel::load(test::write_tiny_moe(m, "top2")));
  m.top_k = m.experts;
  EXPECT_GT(relative_l2_error(prompt_logits(LlamaModel::load(test::write_tiny_moe(m, "top8")))[2], top2[2]), 1e-3);
  m.top_k = 2;
  m.norm_topk_prob = false;
  EXPECT_GT(relative_l2_error(prompt_logits(LlamaModel::load(test::write_tiny_moe(m, "raw")))[2], top2[2]), 1e-3);
}

TEST(MoeModel, EachRowIsRoutedOnItsOwn) {
  for (const TinyMoe& m : {mixtral(), qwen2_moe(), qwen3_moe()}) {
    const LlamaModel model = LlamaModel::load(test::write_tiny_moe(m, "batch"));
    std::vector<std::vector<float>> alone;
    for (const std::vector<float>& logits : prompt_logits(model))
      alone.emplace_back(logits.end() - model.config().vocab_size, logits.end());
    expect_close(batched_last_logits(model), alone, 1e-5, m.architecture + " batched vs alone");
  }
}

std::vector<std::vector<float>> tensor_parallel_logits(const fs::path& dir, int tp, const TpPlanSource& source) {
  const ModelConfig config = ModelConfig::from_dir(dir);
  const auto checkpoint = std::make_shared<const Checkpoint>(Checkpoint::open(dir));
  const TpPlan plan = resolve_tp_plan(config, weight_specs(*checkpoint), source, tp);
  std::vector<std::vector<std::vector<float>>> per_rank(static_cast<size_t>(tp));
  ThreadGroup::run(tp, [&](Communicator& comm) {
    per_rank[size_t(comm.rank())] = prompt_logits(LlamaModel(config, checkpoint, TensorParallelRank{&plan, comm.rank(), &comm}));
  });
  for (int rank = 1; rank < tp; ++rank) EXPECT_EQ(per_rank[size_t(rank)], per_rank[0]) << "rank " << rank;
  return per_rank[0];
}

void expect_parallel_matches_one_rank(const TinyMoe& m, const TpPlanSource& source, std::initializer_list<int> sizes) {
  const fs::path dir = test::write_tiny_moe(m, "tp");
  const auto single = prompt_logits(LlamaModel::load(dir));
  for (int tp : sizes)
    expect_close(tensor_parallel_logits(dir, tp, source), single, 1e-5,
                 m.architecture + " " + source.origin + " tp=" + std::to_string(tp));
}

TEST(MoeTensorParallel, AutoPlansSplitTheExperts) {
  const fs::path dir = test::write_tiny_moe(qwen2_moe(), "plans");
  const ModelConfig config = ModelConfig::from_dir(dir);
  const std::vector<WeightSpec> specs = weight_specs(Checkpoint::open(dir));
  const TpPlan split = resolve_tp_plan(config, specs, TpPlanSource::auto_plan(), 2);
  EXPECT_EQ(split.slice("model.layers.1.mlp.experts.5.gate_proj.weight", 1).local_shape, (std::vector<int64_t>{8, 32}));
  EXPECT_EQ(split.slice("model.layers.1.mlp.experts.5.down_proj.weight", 1).local_shape, (std::vector<int64_t>{32, 8}));
  EXPECT_TRUE(split.slice("model.layers.1.mlp.gate.weight", 1).whole());
  EXPECT_TRUE(split.slice("model.layers.1.mlp.shared_expert.up_proj.weight", 1).whole());  // not in Transformers' plan
  const TpPlan by_expert = resolve_tp_plan(config, specs, TpPlanSource::auto_plan(true), 4);
  for (int rank = 0; rank < 4; ++rank)  // experts 2 and 3 live on rank 1
    EXPECT_EQ(by_expert.slice("model.layers.0.mlp.experts.3.down_proj.weight", rank).held, rank == 1) << rank;
  EXPECT_TRUE(by_expert.slice("model.layers.0.mlp.experts.3.down_proj.weight", 1).whole());
}

TEST(MoeTensorParallel, AModelWhoseLayersAreAllDenseGetsNoExpertEntries) {
  TinyMoe m = qwen3_moe();
  m.mlp_only_layers = {0, 1, 2};
  expect_parallel_matches_one_rank(m, TpPlanSource::auto_plan(), {2});
}

TEST(MoeParameterCount, ExpertNamesInADenseModelAreOrdinaryTensors) {
  const ModelConfig dense = ModelConfig::parse(
      R"({"architectures": ["LlamaForCausalLM"], "hidden_size": 8, "intermediate_size": 8, "num_hidden_layers": 1,
          "num_attention_heads": 2, "vocab_size": 16})",
      "config.json");
  const ParameterCount count = count_parameters(dense, {{"model.layers.0.mlp.experts.0.gate_proj.weight", {2, 2}, DType::F32}});
  EXPECT_EQ(count.total, 4);
  EXPECT_EQ(count.active, 4);
  EXPECT_EQ(count.bytes_per_expert, 0);
}

TEST(MoeParameterCount, ADecodeStepOfManyRowsReadsTheExpertsSomeRowChose) {
  const ModelConfig config = ModelConfig::from_dir(test::write_tiny_moe(qwen3_moe(), "step-bytes"));
  const ParameterCount count = count_parameters(config, weight_specs(config, DType::BF16));
  ASSERT_GT(count.expert_bytes, 0);
  const double others = double(count.active_bytes) - double(count.expert_bytes) * 2 / 8;  // top 2 of 8
  EXPECT_DOUBLE_EQ(decode_step_bytes(count, config.moe, 1), double(count.active_bytes));
  // Each expert is left out by a row with chance 6/8: by three rows with chance (6/8)^3.
  EXPECT_NEAR(decode_step_bytes(count, config.moe, 3), others + double(count.expert_bytes) * (1 - 27.0 / 64), 1.0);
  EXPECT_NEAR(decode_step_bytes(count, config.moe, 1000), double(count.total_bytes), 1.0);
}

TEST(MoeTensorParallel, ExpertsSplitLikeMlpsMatchOneRank) {
  for (const TinyMoe& m : {mixtral(), qwen2_moe(), qwen3_moe()})
    expect_parallel_matches_one_rank(m, TpPlanSource::auto_plan(), {2, 4});
}

TEST(MoeTensorParallel, ExpertParallelMatchesOneRank) {
  for (const TinyMoe& m : {mixtral(), qwen2_moe(), qwen3_moe()})
    expect_parallel_matches_one_rank(m, TpPlanSource::auto_plan(true), {2, 4});
}

TEST(MoeTensorParallel, PerExpertPlansWithMixtralNamesMatchOneRank) {
  // Transformers 4.5x wrote per-expert entries, completed by a gather on the experts.
  TinyMoe m = mixtral();
  m.layout = ExpertLayout::MIXTRAL_PER_EXPERT;
  const TpPlanSource plan = TpPlanSource::from_json(R"({
      "layers.*.self_attn.q_proj": "colwise", "layers.*.self_attn.k_proj": "colwise",
      "layers.*.self_attn.v_proj": "colwise", "layers.*.self_attn.o_proj": "rowwise",
      "layers.*.block_sparse_moe.experts.*.w1": "local_colwise",
      "layers.*.block_sparse_moe.experts.*.w3": "local_colwise",
      "layers.*.block_sparse_moe.experts.*.w2": "local_rowwise",
      "layers.*.block_sparse_moe.experts": "gather"})", "per-expert.json");
  expect_parallel_matches_one_rank(m, plan, {2});
}

TEST(MoeTensorParallel, SplitSharedExpertBesideWholeExpertsMatchesOneRank) {
  // Experts by expert (a partial sum) and the shared expert colwise/rowwise (another): reduced together.
  const TpPlanSource plan = TpPlanSource::from_json(R"({
      "layers.*.mlp.experts.gate_up_proj": "grouped_gemm", "layers.*.mlp.experts.down_proj": "grouped_gemm",
      "layers.*.mlp.experts": "moe_tp_experts", "layers.*.mlp.gate": "ep_router",
      "layers.*.mlp.shared_expert.gate_proj": "colwise", "layers.*.mlp.shared_expert.up_proj": "colwise",
      "layers.*.mlp.shared_expert.down_proj": "rowwise"})", "shared.json");
  expect_parallel_matches_one_rank(qwen2_moe(), plan, {2});
}

std::string plan_error(const TinyMoe& m, int tp, const std::string& json) {
  const fs::path dir = test::write_tiny_moe(m, "plan-error");
  return error_message([&] {
    const ModelConfig config = ModelConfig::from_dir(dir);
    const auto checkpoint = std::make_shared<const Checkpoint>(Checkpoint::open(dir));
    const TpPlan plan = resolve_tp_plan(config, weight_specs(*checkpoint), TpPlanSource::from_json(json, "plan.json"), tp);
    ThreadGroup::run(tp, [&](Communicator& comm) { LlamaModel(config, checkpoint, TensorParallelRank{&plan, comm.rank(), &comm}); });
  });
}

TEST(MoePlanErrors, AreRefusedByName) {
  EXPECT_EQ(plan_error(qwen3_moe(), 3, R"({"layers.*.mlp.experts.gate_up_proj": "grouped_gemm",
                                          "layers.*.mlp.experts.down_proj": "grouped_gemm",
                                          "layers.*.mlp.experts": "moe_tp_experts"})"),
            "tp plan plan.json: model.layers.0.mlp.experts (grouped_gemm) splits 8 experts over tp=3: not divisible");
  EXPECT_CONTAINS(plan_error(qwen3_moe(), 2, R"({"layers.*.mlp.experts.gate_up_proj": "colwise"})"),
                  "tp plan plan.json: \"layers.*.mlp.experts.gate_up_proj\" (colwise): mlp.experts.gate_up_proj is a fused "
                  "weight, each expert's gate rows then its up rows: use packed_colwise");
  EXPECT_CONTAINS(plan_error(qwen3_moe(), 2, R"({"layers.*.mlp.experts.down_proj": "packed_rowwise"})"),
                  "mlp.experts.down_proj takes the intermediate features that packed_colwise splits");
  EXPECT_CONTAINS(plan_error(qwen3_moe(), 2, R"({"layers.*.mlp.experts.*.gate_proj": "local_colwise",
                                                "layers.*.mlp.experts.*.up_proj": "local_colwise",
                                                "layers.*.mlp.experts.*.down_proj": "local_rowwise"})"),
                  "tp plan: the experts of model.layers.0.mlp are local_rowwise, but no moe_tp_experts entry sums the "
                  "output of model.layers.0.mlp.experts");
  EXPECT_CONTAINS(plan_error(qwen3_moe(), 2, R"({"layers.*.mlp.experts": "moe_tp_experts"})"),
                  "model.layers.0.mlp.experts is summed over the ranks, but its experts are whole on every rank");
  EXPECT_CONTAINS(plan_error(qwen3_moe(), 2, R"({"layers.*.mlp.experts.gate_up_proj": "grouped_gemm",
                                                "layers.*.mlp.experts.down_proj": "rowwise",
                                                "layers.*.mlp.experts": "moe_tp_experts"})"),
                  "gate_proj, up_proj and down_proj are not held by the same ranks (grouped_gemm must split "
                  "gate_up_proj and down_proj alike)");
  EXPECT_CONTAINS(plan_error(qwen3_moe(), 2, R"({"layers.*.mlp": "all_reduce"})"),
                  "tp plan: model.layers.0.mlp is a mixture of experts; sum its experts with moe_tp_experts on "
                  "model.layers.0.mlp.experts instead");
}

TEST(MoePlanErrors, AnExpertBeyondTheConfigIsNamed) {
  const fs::path dir = test::write_tiny_moe(qwen3_moe(), "stray");
  const ModelConfig config = ModelConfig::from_dir(dir);
  std::vector<WeightSpec> specs = weight_specs(Checkpoint::open(dir));
  specs.push_back({"model.layers.0.mlp.experts.99999999999999999999.gate_proj.weight", {16, 32}, DType::F32});
  EXPECT_EQ(error_message([&] { resolve_tp_plan(config, specs, TpPlanSource::auto_plan(true), 2); }),
            "tp plan: model.layers.0.mlp.experts.99999999999999999999.gate_proj.weight names expert "
            "99999999999999999999, but config.json has 8 experts");
}

TEST(MoeCheckpointErrors, AreRefusedByName) {
  TinyMoe m = qwen3_moe();
  std::vector<TinyTensor> tensors = test::tiny_moe_tensors(m);
  std::erase_if(tensors, [](const TinyTensor& t) { return t.name == "model.layers.2.mlp.experts.3.up_proj.weight"; });
  const fs::path dir = test::write_tiny_moe(m, "missing");
  test::write_tiny_safetensors(dir / "model.safetensors", tensors);
  EXPECT_ERROR_NAMES(LlamaModel::load(dir), "missing expert tensor model.layers.2.mlp.experts.3.up_proj.weight",
                     "expert 3 of layer 2", "block_sparse_moe.experts.3.w1/w3/w2");

  m.layout = ExpertLayout::FUSED;
  tensors = test::store_experts(m, test::tiny_moe_tensors(m));
  for (TinyTensor& t : tensors)
    if (t.name == "model.layers.0.mlp.experts.down_proj") t.shape = {int64_t(m.experts) * m.hidden, m.expert_ff};
  test::write_tiny_safetensors(dir / "model.safetensors", tensors);
  EXPECT_ERROR_NAMES(Checkpoint::open(dir), "model.safetensors: fused expert tensor model.layers.0.mlp.experts.down_proj",
                     "[256, 16]", "must be 3-D");

  // Without rows or columns, nothing would bound the number of experts a header claims.
  tensors = test::store_experts(m, test::tiny_moe_tensors(m));
  tensors.push_back({"model.layers.9.mlp.experts.down_proj", {1000000000000, 0, 4}, {}});
  test::write_tiny_safetensors(dir / "model.safetensors", tensors);
  EXPECT_ERROR_NAMES(Checkpoint::open(dir), "fused expert tensor model.layers.9.mlp.experts.down_proj has shape "
                                            "[1000000000000, 0, 4]; each expert's matrix must have rows and columns");

  // An expert stored twice (per expert and fused) is ambiguous.
  tensors = test::store_experts(m, test::tiny_moe_tensors(m));
  tensors.push_back({"model.layers.0.mlp.experts.1.down_proj.weight", {m.hidden, m.expert_ff},
                     std::vector<float>(size_t(m.hidden * m.expert_ff))});
  test::write_tiny_safetensors(dir / "model.safetensors", tensors);
  EXPECT_ERROR_NAMES(Checkpoint::open(dir), "model.layers.0.mlp.experts.1.down_proj.weight is stored twice",
                     "model.layers.0.mlp.experts.down_proj[1, 0:32]");
}

}  // namespace
}  // namespace shardlm
