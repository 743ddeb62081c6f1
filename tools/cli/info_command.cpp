// `shardlm info`: what a checkpoint is (architecture and shape), how many parameters it holds and
// how many bytes of each dtype, read from the headers without touching the weights.
#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include <map>
#include <memory>

#include "commands.h"
#include "common_options.h"
#include "io/model_config.h"
#include "io/safetensors.h"

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

void run_info(const ModelOptions& model_options, bool json) {
  const std::filesystem::path dir = prepare_model_dir(model_options);
  const ModelConfig config = ModelConfig::from_dir(dir);
  const Checkpoint checkpoint = Checkpoint::open(dir);
  int64_t n_parameters = 0;
  std::map<std::string, int64_t> bytes_by_dtype;
  for (const auto& [name, tensor] : checkpoint.tensors()) {
    n_parameters += tensor.numel();
    bytes_by_dtype[std::string(dtype_name(tensor.dtype))] += int64_t(tensor.n_bytes);
  }
  const nlohmann::json info = {
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
      {"parameters", n_parameters},
      {"bytes_by_dtype", bytes_by_dtype},
  };
  if (json) {
    fmt::print("{}\n", info.dump(2));
    return;
  }
  fmt::print("model          {}\n", dir.string());
  fmt::print("architecture   {}\n", config.architecture_name);
  fmt::print("layers         {}  hidden {}  ffn {}  heads {} (kv {})  head_dim {}\n", config.num_hidden_layers,
             config.hidden_size, config.intermediate_size, config.num_attention_heads, config.num_key_value_heads,
             config.head_dim);
  fmt::print("vocab          {}  context {}  rope {} (theta {})  tied head {}\n", config.vocab_size,
             config.max_position_embeddings, rope_type_name(config.rope_scaling.type), config.rope_theta,
             config.tie_word_embeddings ? "yes" : "no");
  fmt::print("parameters     {} ({:.2f} M)\n", n_parameters, double(n_parameters) / 1e6);
  for (const auto& [dtype, bytes] : bytes_by_dtype)
    fmt::print("bytes {:<8} {} ({:.2f} MiB)\n", dtype, bytes, double(bytes) / (1024.0 * 1024.0));
}

}  // namespace

void add_info_command(CLI::App& app) {
  struct Options {
    ModelOptions model;
    bool json = false;
  };
  auto options = std::make_shared<Options>();
  CLI::App* command = app.add_subcommand("info", "Print the architecture, parameter count and bytes by dtype");
  add_model_options(*command, options->model);
  command->add_flag("--json", options->json, "Print as JSON");
  command->callback([options] { run_info(options->model, options->json); });
}

}  // namespace shardlm::cli
