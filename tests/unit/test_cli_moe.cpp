// The shardlm command on a mixture-of-experts checkpoint (a tiny Qwen3-MoE written here with the
// fixture's tokenizer): generate gives the same greedy tokens on one CPU rank, two tensor-parallel
// ranks and two expert-parallel ranks; info and plan report the active parameters and the bytes
// of an expert; --cpu-moe needs a device map and a GPU; --enable-expert-parallel is refused where
// it cannot apply; a random shape saved by bench is benchmarked at its active bytes.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "broken_model.h"
#include "cli_runner.h"
#include "error_message.h"
#include "tiny_moe_model.h"

namespace shardlm {
namespace {

namespace fs = std::filesystem;

// Qwen3-MoE with 8 experts (top 2) in layers 0 and 2, a dense layer 1, and the fixture's vocabulary.
fs::path write_moe_with_tokenizer() {
  test::TinyMoe m;
  m.mlp_only_layers = {1};
  return test::write_tiny_moe_with_tokenizer(m, "cli", kFixture);
}

std::vector<int32_t> greedy_ids(const fs::path& model, std::vector<std::string> extra) {
  std::vector<std::string> args = {"generate", "--model", model.string(), "--prompt", "In the beginning God created",
                                   "--max-new-tokens", "12", "--temperature", "0", "--json"};
  args.insert(args.end(), extra.begin(), extra.end());
  const CommandResult result = run_cli(args, false);
  EXPECT_EQ(result.exit_code, 0) << result.output;
  if (result.exit_code != 0) return {};
  return nlohmann::json::parse(result.output)["output_ids"].get<std::vector<int32_t>>();
}

TEST(CliMoe, OneRankTensorParallelAndExpertParallelGenerateTheSameTokens) {
  const fs::path model = write_moe_with_tokenizer();
  const std::vector<int32_t> single = greedy_ids(model, {});
  ASSERT_EQ(single.size(), 12u);
  EXPECT_EQ(greedy_ids(model, {"--tp", "2"}), single);
  EXPECT_EQ(greedy_ids(model, {"--tp", "2", "--enable-expert-parallel"}), single);
}

TEST(CliMoe, InfoAndPlanReportActiveParametersAndExpertBytes) {
  const fs::path model = write_moe_with_tokenizer();
  const CommandResult info = run_cli({"info", "--model", model.string(), "--json"}, false);
  ASSERT_EQ(info.exit_code, 0) << info.output;
  const nlohmann::json object = nlohmann::json::parse(info.output);
  // One expert: gate, up (16 x 32) and down (32 x 16) in f32.
  const int64_t expert_bytes = 3 * 16 * 32 * 4;
  EXPECT_EQ(object["bytes_per_expert"], expert_bytes);
  EXPECT_EQ(object["num_experts"], 8);
  EXPECT_EQ(object["sparse_layers"], 2);
  // Each token skips 6 of the 8 experts in both sparse layers.
  EXPECT_EQ(object["parameters"].get<int64_t>() - object["active_parameters"].get<int64_t>(), 2 * 6 * expert_bytes / 4);
  const CommandResult text = run_cli({"info", "--model", model.string()}, false);
  EXPECT_CONTAINS(text.output, "experts        8 in 2 of 3 layers, 2 per token");

  const CommandResult plan = run_cli({"plan", "--model", model.string(), "--tp", "2", "--enable-expert-parallel"}, false);
  ASSERT_EQ(plan.exit_code, 0) << plan.output;
  EXPECT_CONTAINS(plan.output, "model.layers.*.mlp.experts.*.gate_proj.weight");
  EXPECT_CONTAINS(plan.output, "grouped_gemm");
  const CommandResult device_plan = run_cli({"plan", "--model", model.string(), "--dtype", "stored"}, false);
  ASSERT_EQ(device_plan.exit_code, 0) << device_plan.output;
  EXPECT_CONTAINS(device_plan.output, "experts: " + std::to_string(object["active_parameters"].get<int64_t>()) + " of " +
                                          std::to_string(object["parameters"].get<int64_t>()) + " parameters active");
}

TEST(CliMoe, PlanKeepsExpertsInCpuMemory) {
  const fs::path model = write_moe_with_tokenizer();
  const CommandResult plan = run_cli({"plan", "--model", model.string(), "--devices", "cuda:0=1GiB,cpu=1GiB",
                                      "--dtype", "stored", "--n-cpu-moe", "1", "--json"}, false);
  ASSERT_EQ(plan.exit_code, 0) << plan.output;
  const nlohmann::json object = nlohmann::json::parse(plan.output);
  EXPECT_EQ(object["cpu_expert_bytes"], 8 * 3 * 16 * 32 * 4);  // layer 0's eight experts, f32
  EXPECT_EQ(object["experts_in_cpu"], nlohmann::json({true, false, false}));
  const CommandResult all = run_cli({"plan", "--model", model.string(), "--devices", "cuda:0=1GiB,cpu=1GiB",
                                     "--dtype", "stored", "--cpu-moe"}, false);
  EXPECT_CONTAINS(all.output, "--cpu-moe: the experts of layers 0,2 (96.00 KiB) stay in cpu memory");
  EXPECT_CONTAINS(all.output, "cuda:0  0-2     embed,norm,head");  // the rest of every layer on the GPU
  const CommandResult with_tp = run_cli({"plan", "--model", model.string(), "--tp", "2", "--cpu-moe"});
  EXPECT_EQ(with_tp.exit_code, 1);
  EXPECT_CONTAINS(with_tp.output, "--cpu-moe");
}

TEST(CliMoe, CpuMoeNeedsADeviceMapAndAGpu) {
  const fs::path model = write_moe_with_tokenizer();
  const CommandResult without_map = run_cli({"generate", "--model", model.string(), "--prompt", "Hi", "--cpu-moe"});
  EXPECT_EQ(without_map.exit_code, 1);
  EXPECT_CONTAINS(without_map.output, "--cpu-moe requires --device-map");
  for (const char* command : {"generate", "serve"}) {
    std::vector<std::string> args = {command, "--model", model.string(), "--device", "cpu", "--device-map", "auto",
                                     "--n-cpu-moe", "2"};
    if (std::string(command) == "generate") args.insert(args.end(), {"--prompt", "Hi"});
    const CommandResult on_cpu = run_cli(args);
    EXPECT_EQ(on_cpu.exit_code, 1) << command;
    EXPECT_CONTAINS(on_cpu.output, "--cpu-moe / --n-cpu-moe keep experts in cpu memory while a GPU runs the rest of "
                                   "their layers: they need --device cuda:N");
  }
}

TEST(CliMoe, ExpertParallelIsRefusedWhereItCannotApply) {
  const fs::path model = write_moe_with_tokenizer();
  const CommandResult alone = run_cli({"generate", "--model", model.string(), "--prompt", "Hi", "--enable-expert-parallel"});
  EXPECT_EQ(alone.exit_code, 1);
  EXPECT_CONTAINS(alone.output, "--enable-expert-parallel splits the experts over tensor-parallel ranks: it needs --tp N");
  const CommandResult dense =
      run_cli({"generate", "--model", kFixture.string(), "--prompt", "Hi", "--tp", "2", "--enable-expert-parallel"});
  EXPECT_EQ(dense.exit_code, 1);
  EXPECT_CONTAINS(dense.output, "--enable-expert-parallel: LlamaForCausalLM has no experts to split");
  const fs::path plan_file = model / "plan.json";
  std::ofstream(plan_file) << R"({"layers.*.self_attn.q_proj": "colwise"})";
  const CommandResult with_file = run_cli({"generate", "--model", model.string(), "--prompt", "Hi", "--tp", "2",
                                           "--tp-plan", plan_file.string(), "--enable-expert-parallel"});
  EXPECT_EQ(with_file.exit_code, 1);
  EXPECT_CONTAINS(with_file.output, "--enable-expert-parallel chooses the experts' split of --tp-plan auto");
}

// bench --random SHAPE --save DIR writes a checkpoint without a GPU; benchmarking it on the CPU
// takes the active bytes as the floor's weights, not every expert's.
TEST(CliMoe, SavedRandomShapeIsBenchmarkedAtItsActiveBytes) {
  const fs::path dir = test::scratch_dir("cli-random-moe");
  const fs::path shape = dir / "tiny-qwen3-moe.json";
  std::ofstream(shape) << R"({"architectures": ["Qwen3MoeForCausalLM"], "hidden_size": 64, "intermediate_size": 96,
    "moe_intermediate_size": 32, "num_experts": 8, "num_experts_per_tok": 2, "norm_topk_prob": true,
    "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16, "vocab_size": 256,
    "max_position_embeddings": 128, "rms_norm_eps": 1e-06, "rope_theta": 1000000.0, "tie_word_embeddings": false,
    "bos_token_id": 1, "eos_token_id": 2, "torch_dtype": "bfloat16"})";
  const CommandResult without_shape = run_cli({"bench", "--save", (dir / "none").string()});
  EXPECT_NE(without_shape.exit_code, 0);
  EXPECT_CONTAINS(without_shape.output, "--save requires --random");

  for (const char* name : {"first", "second"}) {
    const CommandResult saved = run_cli({"bench", "--random", shape.string(), "--save", (dir / name).string()});
    ASSERT_EQ(saved.exit_code, 0) << saved.output;
  }
  const auto bytes_of = [](const fs::path& file) {
    std::ifstream in(file, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  const std::string weights = bytes_of(dir / "first" / "model.safetensors");
  EXPECT_EQ(weights, bytes_of(dir / "second" / "model.safetensors")) << "the values depend only on the names";

  const CommandResult info = run_cli({"info", "--model", (dir / "first").string(), "--json"}, false);
  ASSERT_EQ(info.exit_code, 0) << info.output;
  const nlohmann::json model = nlohmann::json::parse(info.output);
  EXPECT_EQ(model["num_experts"], 8);
  const int64_t active_bytes = 2 * model["active_parameters"].get<int64_t>();  // bf16
  EXPECT_LT(active_bytes, 2 * model["parameters"].get<int64_t>());

  const CommandResult bench = run_cli({"bench", "--model", (dir / "first").string(), "--prompt-len", "4",
                                       "--new-tokens", "3", "--threads", "1"}, false);
  ASSERT_EQ(bench.exit_code, 0) << bench.output;
  const nlohmann::json timed = nlohmann::json::parse(bench.output);
  EXPECT_EQ(timed["weight_bytes"].get<double>(), double(active_bytes));
  EXPECT_EQ(timed["step_ms"].size(), 3u);
}

}  // namespace
}  // namespace shardlm
