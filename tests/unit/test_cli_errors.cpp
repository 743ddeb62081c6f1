// Bad input a hostile user would try (issue 15): each case ends with exit code 1 and a message
// naming the option, file or tensor at fault, within seconds; none crashes, hangs or answers
// wrongly in silence.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <sys/stat.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include "broken_model.h"
#include "cli_runner.h"
#include "tokenizer/tokenizer.h"

namespace shardlm {
namespace {

namespace fs = std::filesystem;

// Every command here finishes in a second or two on the fixture; a hang is stopped at this bound.
constexpr int kBoundSeconds = 30;

void expect_refused(const CommandResult& result, const std::vector<std::string>& needles) {
  EXPECT_EQ(result.exit_code, 1) << result.output;
  for (const std::string& needle : needles)
    EXPECT_NE(result.output.find(needle), std::string::npos) << "message should name '" << needle << "': " << result.output;
}

std::vector<std::string> generate_args(const fs::path& model, std::vector<std::string> more) {
  std::vector<std::string> args = {"generate", "--model", model.string(), "--prompt", "Hello", "-n", "4"};
  args.insert(args.end(), more.begin(), more.end());
  return args;
}

// 1. --threads is bounded by the CPUs this process may use; 100000 used to crash libgomp.
TEST(CliErrors, ThreadCountOutsideTheMachineIsRefusedQuickly) {
  for (const std::string threads : {"100000", "0", "-3", "many"}) {
    const auto start = std::chrono::steady_clock::now();
    const CommandResult result = run_cli_bounded(generate_args(kFixture, {"--threads", threads}), kBoundSeconds);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    expect_refused(result, {"--threads", "an integer from 1 to", "\"" + threads + "\""});
    EXPECT_LT(seconds, 10.0) << threads;
  }
  const CommandResult one = run_cli_bounded(generate_args(kFixture, {"--threads", "1"}), kBoundSeconds);
  EXPECT_EQ(one.exit_code, 0) << one.output;
}

// 2. A FIFO (or other non-regular file) in place of a model file fails instead of blocking in open().
TEST(CliErrors, ServeKvCacheOptionsThatCannotWorkAreRefusedByName) {
  const std::vector<std::pair<std::vector<std::string>, std::vector<std::string>>> cases = {
      {{"--block-size", "12"}, {"--block-size", "power of two"}},
      {{"--kv-cache-memory", "1KiB"}, {"--kv-cache-memory", "fewer than one sequence", "--max-model-len"}},
      {{"--kv-cache-memory", "lots"}, {"--kv-cache-memory"}},
      {{"--kv-cache-memory", "0"}, {"--kv-cache-memory", "above 0"}},
      {{"--gpu-memory-utilization", "0"}, {"--gpu-memory-utilization", "(0, 1]"}},
      {{"--gpu-memory-utilization", "0.5"}, {"--gpu-memory-utilization", "one GPU"}},
      {{"--kv-cache-memory", "1GiB", "--gpu-memory-utilization", "0.5"}, {"give one"}},
  };
  for (const auto& [options, needles] : cases) {
    std::vector<std::string> args = {"serve", "--model", kFixture.string(), "--port", "0"};
    args.insert(args.end(), options.begin(), options.end());
    expect_refused(run_cli_bounded(args, kBoundSeconds), needles);
  }
}

TEST_F(BrokenModel, FifoInPlaceOfAModelFileFailsWithoutWaiting) {
  for (const std::string file : {"model.safetensors", "config.json", "tokenizer.json", "generation_config.json"}) {
    const fs::path backup = dir_ / (file + ".saved");
    if (fs::exists(dir_ / file)) fs::rename(dir_ / file, backup);
    ASSERT_EQ(::mkfifo((dir_ / file).c_str(), 0600), 0) << file;
    const CommandResult result = run_cli_bounded(generate_args(dir_, {}), kBoundSeconds);
    expect_refused(result, {file, "not a regular file"});
    fs::remove(dir_ / file);
    if (fs::exists(backup)) fs::rename(backup, dir_ / file);
  }
  fs::create_directory(dir_ / "config.json.dir");
  fs::rename(dir_ / "config.json", dir_ / "config.json.saved");
  fs::rename(dir_ / "config.json.dir", dir_ / "config.json");
  expect_refused(run_cli_bounded({"info", "--model", dir_.string()}, kBoundSeconds), {"config.json", "not a regular file"});
}

// 3. NaN or Inf in the weights stops generation naming the position, greedy or sampled, instead of
// printing text made from token 0; info --check-weights names the tensors.
TEST_F(BrokenModel, NonFiniteWeightsStopGenerationAndAreNamedByCheckWeights) {
  poke_f32("model.norm.weight", 3, std::numeric_limits<float>::quiet_NaN());
  for (const std::string temperature : {"0", "0.8"}) {
    const CommandResult result = run_cli_bounded(generate_args(dir_, {"--temperature", temperature}), kBoundSeconds);
    expect_refused(result, {"non-finite logits", "position", "of sequence 0", "--check-weights"});
  }
  poke_f32("lm_head.weight", 100, std::numeric_limits<float>::infinity());
  const CommandResult check = run_cli_bounded({"info", "--model", dir_.string(), "--check-weights"}, kBoundSeconds);
  expect_refused(check, {"--check-weights", "2 of", "lm_head.weight (1 values, the first at index 100)",
                         "model.norm.weight (1 values, the first at index 3)"});
  const CommandResult json = run_cli({"info", "--model", dir_.string(), "--check-weights", "--json"}, false);
  EXPECT_EQ(json.exit_code, 1);
  EXPECT_EQ(nlohmann::json::parse(json.output)["non_finite_tensors"].size(), 2u) << json.output;
}

TEST(CliErrors, CheckWeightsPassesAFiniteCheckpoint) {
  const CommandResult result = run_cli_bounded({"info", "--model", kFixture.string(), "--check-weights"}, kBoundSeconds);
  EXPECT_EQ(result.exit_code, 0) << result.output;
  EXPECT_NE(result.output.find("tensors finite"), std::string::npos) << result.output;
}

// 4. Device-map options without a device map are refused, saying what they need.
TEST(CliErrors, DeviceMapOptionsNeedADeviceMap) {
  expect_refused(run_cli(generate_args(kFixture, {"--max-memory", "garbage"})), {"--max-memory", "--device-map"});
  expect_refused(run_cli(generate_args(kFixture, {"--offload-exec", "stream"})), {"--offload-exec", "--device-map"});
  expect_refused(run_cli({"plan", "--random", "llama3-8b", "--tp", "2", "--max-memory", "0=1GiB"}), {"--tp", "--max-memory"});
}

// 5. A tensor-parallel plan without tensor parallelism is refused rather than ignored.
TEST(CliErrors, TensorParallelPlanNeedsTensorParallelism) {
  expect_refused(run_cli(generate_args(kFixture, {"--tp-plan", "/nonexistent/plan.json"})), {"--tp-plan", "--tp N"});
  expect_refused(run_cli({"plan", "--random", "llama3-8b", "--tp-plan", "plan.json"}), {"--tp-plan", "--tp"});
}

// 6. Checkpoint and config that disagree: unused tensors are named in a warning, out-of-vocabulary
// ids in config.json and generation_config.json are errors.
TEST_F(BrokenModel, TensorsTheModelDoesNotUseAreNamed) {
  const int n_layers = read_json("config.json")["num_hidden_layers"];
  set_json_key("config.json", "num_hidden_layers", n_layers - 1);
  add_f32_tensor("model.layers.99.foo.weight", 4);
  const CommandResult result = run_cli_bounded(generate_args(dir_, {}), kBoundSeconds);
  EXPECT_EQ(result.exit_code, 0) << result.output;
  const std::string last_layer = "model.layers." + std::to_string(n_layers - 1) + ".";
  EXPECT_NE(result.output.find("warning"), std::string::npos) << result.output;
  EXPECT_NE(result.output.find("not used"), std::string::npos) << result.output;
  EXPECT_NE(result.output.find(last_layer), std::string::npos) << result.output;
  EXPECT_NE(result.output.find("more"), std::string::npos) << result.output;  // 9+ unused, 5 named
}

TEST_F(BrokenModel, AStrayTensorIsNamed) {
  add_f32_tensor("model.layers.99.foo.weight", 4);
  const CommandResult result = run_cli_bounded(generate_args(dir_, {}), kBoundSeconds);
  EXPECT_EQ(result.exit_code, 0) << result.output;
  EXPECT_NE(result.output.find("1 tensors of the checkpoint are not used"), std::string::npos) << result.output;
  EXPECT_NE(result.output.find("model.layers.99.foo.weight"), std::string::npos) << result.output;
}

TEST_F(BrokenModel, TokenIdsOutsideTheVocabularyAreErrors) {
  set_json_key("config.json", "eos_token_id", 99999);
  expect_refused(run_cli({"info", "--model", dir_.string()}), {"config.json", "eos_token_id", "99999", "vocab_size"});
  fs::copy_file(kFixture / "config.json", dir_ / "config.json", fs::copy_options::overwrite_existing);
  set_json_key("generation_config.json", "eos_token_id", nlohmann::json::array({2, 99999}));
  expect_refused(run_cli(generate_args(dir_, {})), {"generation_config.json", "eos_token_id", "99999"});
}

// 7. Parse errors exit 1 like every error, name the option and give the range in plain numbers.
TEST(CliErrors, ParseErrorsExitOneAndNameTheOption) {
  const CommandResult tp = run_cli(generate_args(kFixture, {"--tp", "0"}));
  expect_refused(tp, {"--tp", "an integer from 1 to 2147483647", "\"0\""});
  EXPECT_EQ(tp.output.find("179769"), std::string::npos) << tp.output;
  expect_refused(run_cli(generate_args(kFixture, {"-n", "1e12"})), {"--max-new-tokens", "an integer from 0 to", "1e12"});
  expect_refused(run_cli(generate_args(kFixture, {"--temperature", "warm"})), {"--temperature", "a number", "warm"});
  expect_refused(run_cli(generate_args(kFixture, {"--bogus"})), {"--bogus", "generate --help"});
  expect_refused(run_cli({"frobnicate"}), {"unknown subcommand \"frobnicate\"", "generate", "tokenize"});
  expect_refused(run_cli({}), {"subcommand", "generate"});
  expect_refused(run_cli({"launch", "--master-port", "70000", "--", "true"}), {"--master-port", "from 1 to 65535"});
  const CommandResult help = run_cli({"generate", "--help"}, false);
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_NE(help.output.find("--prompt-file"), std::string::npos);
}

// 8. A GPU that is not there is named, with the number that are (or the missing backend).
TEST(CliErrors, MissingGpuIsNamed) {
  for (const std::string command : {"generate", "bench"}) {
    std::vector<std::string> args = {command, "--model", kFixture.string(), "--device", "cuda:99"};
    if (command == "generate") args.insert(args.end(), {"--prompt", "Hi"});
    const CommandResult result = run_cli_bounded(args, kBoundSeconds);
    expect_refused(result, {"cuda:99"});
    const bool names_count = result.output.find("visible") != std::string::npos;
    const bool names_backend = result.output.find("without the CUDA backend") != std::string::npos;
    EXPECT_TRUE(names_count || names_backend) << result.output;
  }
}

// 9. Prompts beyond one argument's 128 KiB come from a file or standard input.
class PromptFile : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = fs::temp_directory_path() / ("shardlm-prompt-" + std::to_string(::getpid()) + "-" +
                                         ::testing::UnitTest::GetInstance()->current_test_info()->name());
  }
  void TearDown() override { fs::remove(path_); }
  void write(const std::string& text) { std::ofstream(path_, std::ios::binary) << text; }
  fs::path path_;
};

TEST_F(PromptFile, LongPromptsComeFromAFileOrStandardInput) {
  std::string text;
  while (text.size() < 200 * 1024) text += "In the beginning God created the heaven and the earth. ";
  write(text + "\n");  // the editor's trailing newline is not part of the prompt
  const std::vector<int32_t> expected = Tokenizer::from_dir(kFixture).encode(text);
  const CommandResult from_file =
      run_cli_bounded({"tokenize", "--model", kFixture.string(), "--prompt-file", path_.string()}, kBoundSeconds);
  ASSERT_EQ(from_file.exit_code, 0) << from_file.output.substr(0, 2000);
  EXPECT_EQ(nlohmann::json::parse(from_file.output).get<std::vector<int32_t>>(), expected);
  const CommandResult from_stdin =
      run_cli_bounded({"tokenize", "--model", kFixture.string(), "-"}, kBoundSeconds, path_.string());
  ASSERT_EQ(from_stdin.exit_code, 0) << from_stdin.output.substr(0, 2000);
  EXPECT_EQ(nlohmann::json::parse(from_stdin.output).get<std::vector<int32_t>>(), expected);
}

TEST_F(PromptFile, GenerateAndBenchTakePromptFiles) {
  write("Hello, world!\n");
  const std::vector<int32_t> expected = Tokenizer::from_dir(kFixture).encode("Hello, world!");
  const CommandResult from_file = run_cli({"generate", "--model", kFixture.string(), "--prompt-file", path_.string(),
                                           "-n", "2", "--json"}, false);
  ASSERT_EQ(from_file.exit_code, 0) << from_file.output;
  EXPECT_EQ(nlohmann::json::parse(from_file.output)["prompt_ids"].get<std::vector<int32_t>>(), expected);
  const CommandResult from_stdin = run_cli_bounded(
      {"generate", "--model", kFixture.string(), "--prompt", "-", "-n", "2", "--json"}, kBoundSeconds, path_.string());
  ASSERT_EQ(from_stdin.exit_code, 0) << from_stdin.output;
  EXPECT_NE(from_stdin.output.find("\"prompt_ids\""), std::string::npos) << from_stdin.output;
  const CommandResult bench = run_cli_bounded({"bench", "--model", kFixture.string(), "--prompt-file", path_.string(),
                                               "--new-tokens", "2"}, kBoundSeconds);
  ASSERT_EQ(bench.exit_code, 0) << bench.output;
  EXPECT_NE(bench.output.find("\"prompt_len\": " + std::to_string(expected.size())), std::string::npos) << bench.output;
  expect_refused(run_cli({"generate", "--model", kFixture.string(), "--prompt-file", "/nonexistent/prompt.txt"}),
                 {"--prompt-file", "/nonexistent/prompt.txt"});
  expect_refused(run_cli({"generate", "--model", kFixture.string()}), {"--prompt", "--prompt-file"});
  expect_refused(run_cli({"bench", "--model", kFixture.string(), "--prompt", "x", "--prompt-len", "8"}),
                 {"--prompt-len", "--prompt"});
}

// 10. --seed -1 draws a seed (and says which); other negatives are refused. A worker killed under
// launch makes launch exit 1 saying so, not 137 as if launch itself had been killed.
TEST(CliErrors, SeedMinusOneIsRandomAndOtherNegativesAreRefused) {
  const CommandResult random = run_cli_bounded(generate_args(kFixture, {"--seed", "-1", "--temperature", "1"}), kBoundSeconds);
  EXPECT_EQ(random.exit_code, 0) << random.output;
  EXPECT_NE(random.output.find("sampling with seed"), std::string::npos) << random.output;
  expect_refused(run_cli(generate_args(kFixture, {"--seed", "-2"})), {"--seed", "an integer from -1 to"});
}

TEST(CliErrors, KilledWorkerMakesLaunchExitOne) {
  const CommandResult result =
      run_cli_bounded({"launch", "--nproc-per-node", "1", "--", "sh", "-c", "kill -9 $$"}, kBoundSeconds);
  expect_refused(result, {"launch: a worker", "killed by signal 9"});
}

}  // namespace
}  // namespace shardlm
