// The default model is the small KJV-trained Llama committed under models/; SHARDLM_MODEL
// overrides it without a flag, as HF users set a model through the environment.
#include "common_options.h"

#include <fmt/core.h>
#include <omp.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "plan/device_map/model_layout.h"
#include "option_checks.h"

namespace shardlm::cli {

void add_model_options(CLI::App& command, ModelOptions& options) {
  command.add_option("--model,-m", options.model_dir,
                     "Model directory (config.json, *.safetensors, tokenizer.json); default: $SHARDLM_MODEL or "
                     "the bundled KJV model")
      ->envname("SHARDLM_MODEL");
  // More threads than CPUs only slows OpenMP down, and tens of thousands crash libgomp.
  command.add_option("--threads,-t", options.threads, "CPU threads (default: all cores)")
      ->check(integer_in(1, omp_get_num_procs(), "the CPUs this process may use"));
}

std::filesystem::path prepare_model_dir(const ModelOptions& options) {
  if (options.threads > 0) omp_set_num_threads(options.threads);
  const std::filesystem::path dir = options.model_dir.empty() ? SHARDLM_DEFAULT_MODEL_DIR : options.model_dir;
  if (!std::filesystem::is_directory(dir)) fail("--model: {} is not a directory", dir.string());
  return dir;
}

void warn_about_unused_tensors(const std::filesystem::path& dir, const ModelConfig& config) {
  constexpr size_t kNamed = 5;
  const std::vector<std::string> unused = unused_tensor_names(config, Checkpoint::open(dir));
  if (unused.empty()) return;
  std::string named;
  for (size_t i = 0; i < std::min(unused.size(), kNamed); ++i) named += (i == 0 ? "" : ", ") + unused[i];
  if (unused.size() > kNamed) named += fmt::format(" and {} more", unused.size() - kNamed);
  fmt::print(stderr, "[shardlm] warning: {} tensors of the checkpoint are not used by {} with {} layers ({}): {}\n",
             unused.size(), config.architecture_name, config.num_hidden_layers, (dir / "config.json").string(), named);
}

std::filesystem::path random_shape_file(const std::string& shape) {
  const std::filesystem::path file = shape;
  return file.extension() == ".json" ? file : std::filesystem::path(SHARDLM_SHAPES_DIR) / (shape + ".json");
}

ModelConfig random_shape_config(const std::string& shape) {
  const std::filesystem::path file = random_shape_file(shape);
  std::ifstream in(file);
  if (!in) fail("--random: no shape \"{}\" (looked for {})", shape, file.string());
  std::stringstream text;
  text << in.rdbuf();
  return ModelConfig::parse(text.str(), file.string());
}

void add_tp_plan_options(CLI::App& command, std::string& tp_plan, bool& expert_parallel) {
  command.add_option("--tp-plan", tp_plan, "auto (Transformers' plan for the architecture) or a FILE.json")
      ->capture_default_str();
  command.add_flag("--enable-expert-parallel", expert_parallel,
                   "Mixture-of-experts models: give each --tp rank whole experts (E / N each) instead of a slice of every "
                   "expert; attention stays split by heads");
}

void add_device_option(CLI::App& command, std::string& device) {
  command.add_option("--device", device, "cpu, cuda or cuda:N")->capture_default_str();
}

}  // namespace shardlm::cli
