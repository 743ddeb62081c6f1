// The default model is the small KJV-trained Llama committed under models/; SHARDLM_MODEL
// overrides it without a flag, as HF users set a model through the environment.
#include "common_options.h"

#include <omp.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "core/error.h"

namespace shardlm::cli {

void add_model_options(CLI::App& command, ModelOptions& options) {
  command.add_option("--model,-m", options.model_dir,
                     "Model directory (config.json, *.safetensors, tokenizer.json); default: $SHARDLM_MODEL or "
                     "the bundled KJV model")
      ->envname("SHARDLM_MODEL");
  command.add_option("--threads,-t", options.threads, "CPU threads (default: all cores)")->check(CLI::NonNegativeNumber);
}

std::filesystem::path prepare_model_dir(const ModelOptions& options) {
  if (options.threads > 0) omp_set_num_threads(options.threads);
  const std::filesystem::path dir = options.model_dir.empty() ? SHARDLM_DEFAULT_MODEL_DIR : options.model_dir;
  if (!std::filesystem::is_directory(dir)) fail("--model: {} is not a directory", dir.string());
  return dir;
}

ModelConfig random_shape_config(const std::string& shape) {
  std::filesystem::path file = shape;
  if (file.extension() != ".json") file = std::filesystem::path(SHARDLM_SHAPES_DIR) / (shape + ".json");
  std::ifstream in(file);
  if (!in) fail("--random: no shape \"{}\" (looked for {})", shape, file.string());
  std::stringstream text;
  text << in.rdbuf();
  return ModelConfig::parse(text.str(), file.string());
}

void add_device_option(CLI::App& command, std::string& device) {
  command.add_option("--device", device, "cpu, cuda or cuda:N")->capture_default_str();
}

}  // namespace shardlm::cli
