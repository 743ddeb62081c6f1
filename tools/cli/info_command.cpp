// `shardlm info`: what a checkpoint is (architecture and shape), how many parameters it holds and
// how many bytes of each dtype, read from the headers without touching the weights. With
// --check-weights it also reads every weight and fails naming the tensors that hold NaN or Inf.
#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <map>
#include <memory>

#include "commands.h"
#include "common_options.h"
#include "core/error.h"
#include "io/model_config.h"
#include "io/non_finite_weights.h"
#include "io/safetensors.h"
#include "plan/parameter_count.h"

namespace shardlm::cli {
namespace {

std::string_view rope_type_name(RopeType type) {
  switch (type) {
    case RopeType::DEFAULT: return "default";
    case RopeType::LINEAR: return "linear";
    case RopeType::LLAMA3: return "llama3";
    case RopeType::YARN: return "yarn";
  }
  return "?";
}

// Tensors named in the --check-weights error; the JSON output lists them all.
constexpr size_t kNonFiniteTensorsNamed = 10;

[[noreturn]] void fail_non_finite_weights(const std::vector<NonFiniteTensor>& found, size_t n_tensors) {
  std::string named;
  for (size_t i = 0; i < std::min(found.size(), kNonFiniteTensorsNamed); ++i)
    named += fmt::format("{}{} ({} values, the first at index {})", i == 0 ? "" : ", ", found[i].name,
                         found[i].n_non_finite, found[i].first_index);
  if (found.size() > kNonFiniteTensorsNamed) named += fmt::format(" and {} more", found.size() - kNonFiniteTensorsNamed);
  fail("--check-weights: {} of {} tensors hold NaN or Inf: {}", found.size(), n_tensors, named);
}

int sparse_layer_count(const ModelConfig& config) {
  int n = 0;
  for (int il = 0; il < config.num_hidden_layers; ++il) n += config.is_sparse_layer(il) ? 1 : 0;
  return n;
}

double mib(int64_t bytes) { return double(bytes) / (1024.0 * 1024.0); }

void print_info(const std::filesystem::path& dir, const ModelConfig& config, const ParameterCount& count,
                const std::map<std::string, int64_t>& bytes_by_dtype) {
  const int64_t n_parameters = count.total;
  fmt::print("model          {}\n", dir.string());
  fmt::print("architecture   {}\n", config.architecture_name);
  fmt::print("layers         {}  hidden {}  ffn {}  heads {} (kv {})  head_dim {}\n", config.num_hidden_layers,
             config.hidden_size, config.intermediate_size, config.num_attention_heads, config.num_key_value_heads,
             config.head_dim);
  fmt::print("vocab          {}  context {}  rope {} (theta {})  tied head {}\n", config.vocab_size,
             config.max_position_embeddings, rope_type_name(config.rope_scaling.type), config.rope_theta,
             config.tie_word_embeddings ? "yes" : "no");
  if (config.moe.present())
    fmt::print("experts        {} in {} of {} layers, {} per token  expert ffn {}  shared expert ffn {}\n",
               config.moe.num_experts, sparse_layer_count(config), config.num_hidden_layers,
               config.moe.num_experts_per_tok, config.moe.expert_intermediate_size,
               config.moe.shared_expert_intermediate_size);
  fmt::print("parameters     {} ({:.2f} M)\n", n_parameters, double(n_parameters) / 1e6);
  if (config.moe.present())
    fmt::print("active         {} ({:.2f} M, {:.2f} MiB) per token; {:.2f} MiB per expert\n", count.active,
               double(count.active) / 1e6, mib(count.active_bytes), mib(count.bytes_per_expert));
  for (const auto& [dtype, bytes] : bytes_by_dtype)
    fmt::print("bytes {:<8} {} ({:.2f} MiB)\n", dtype, bytes, double(bytes) / (1024.0 * 1024.0));
}

void run_info(const ModelOptions& model_options, bool json, bool check_weights) {
  const std::filesystem::path dir = prepare_model_dir(model_options);
  const ModelConfig config = ModelConfig::from_dir(dir);
  const Checkpoint checkpoint = Checkpoint::open(dir);
  const ParameterCount count = count_parameters(config, weight_specs(checkpoint));
  std::map<std::string, int64_t> bytes_by_dtype;
  for (const auto& [name, tensor] : checkpoint.tensors())
    bytes_by_dtype[std::string(dtype_name(tensor.dtype))] += int64_t(tensor.n_bytes);
  std::vector<NonFiniteTensor> non_finite;
  if (check_weights) non_finite = find_non_finite_tensors(checkpoint);
  nlohmann::json info = {
      {"model", dir.string()},
      {"architecture", config.architecture_name},
      {"num_hidden_layers", config.num_hidden_layers},
      {"hidden_size", config.hidden_size},
      {"intermediate_size", config.intermediate_size},
      {"num_attention_heads", config.num_attention_heads},
      {"num_key_value_heads", config.num_key_value_heads},
      {"head_dim", config.head_dim},
      {"vocab_size", config.vocab_size},
      {"max_position_embeddings", config.max_position_embeddings},
      {"rope_type", rope_type_name(config.rope_scaling.type)},
      {"rope_theta", config.rope_theta},
      {"tie_word_embeddings", config.tie_word_embeddings},
      {"parameters", count.total},
      {"bytes_by_dtype", bytes_by_dtype},
  };
  if (config.moe.present()) {
    info["num_experts"] = config.moe.num_experts;
    info["num_experts_per_tok"] = config.moe.num_experts_per_tok;
    info["expert_intermediate_size"] = config.moe.expert_intermediate_size;
    info["shared_expert_intermediate_size"] = config.moe.shared_expert_intermediate_size;
    info["sparse_layers"] = sparse_layer_count(config);
    info["active_parameters"] = count.active;
    info["active_bytes"] = count.active_bytes;
    info["bytes_per_expert"] = count.bytes_per_expert;
  }
  if (check_weights) {
    nlohmann::json rows = nlohmann::json::array();
    for (const NonFiniteTensor& tensor : non_finite)
      rows.push_back({{"tensor", tensor.name}, {"non_finite", tensor.n_non_finite}, {"first_index", tensor.first_index}});
    info["non_finite_tensors"] = rows;
  }
  if (json) fmt::print("{}\n", info.dump(2));
  else print_info(dir, config, count, bytes_by_dtype);
  if (!non_finite.empty()) fail_non_finite_weights(non_finite, checkpoint.tensors().size());
  if (check_weights && !json) fmt::print("weights        all {} tensors finite\n", checkpoint.tensors().size());
}

}  // namespace

void add_info_command(CLI::App& app) {
  struct Options {
    ModelOptions model;
    bool json = false;
    bool check_weights = false;
  };
  auto options = std::make_shared<Options>();
  CLI::App* command = app.add_subcommand("info", "Print the architecture, parameter count and bytes by dtype");
  add_model_options(*command, options->model);
  command->add_flag("--json", options->json, "Print as JSON");
  command->add_flag("--check-weights", options->check_weights,
                    "Read every weight and fail, naming them, if any tensor holds NaN or Inf");
  command->callback([options] { run_info(options->model, options->json, options->check_weights); });
}

}  // namespace shardlm::cli
