// Options shared by the subcommands: which model, how many CPU threads, which device.
#pragma once

#include <filesystem>
#include <string>

#include <CLI/CLI.hpp>

#include "io/model_config.h"

namespace shardlm::cli {

struct ModelOptions {
  std::string model_dir;  // empty: the default model
  int threads = 0;        // 0 (not given): OpenMP's default, all cores
};

void add_model_options(CLI::App& command, ModelOptions& options);
// The model directory to load (the default model when --model is absent); applies --threads.
std::filesystem::path prepare_model_dir(const ModelOptions& options);
// Warns on stderr, as Transformers does when it loads, about the checkpoint's tensors that a model
// with this config does not read (a config with fewer layers than the checkpoint, a stray tensor),
// naming the first few.
void warn_about_unused_tensors(const std::filesystem::path& dir, const ModelConfig& config);
// The config file of a built-in shape for --random (bench/shapes/NAME.json), or the path given.
std::filesystem::path random_shape_file(const std::string& shape);
// The config of a built-in shape for --random (bench/shapes/NAME.json) or of a config.json path.
ModelConfig random_shape_config(const std::string& shape);
// --tp-plan (auto or FILE.json) and --enable-expert-parallel.
void add_tp_plan_options(CLI::App& command, std::string& tp_plan, bool& expert_parallel);
// --device: cpu, cuda or cuda:N (parsed by parse_device in engine/engine_options.h).
void add_device_option(CLI::App& command, std::string& device);

}  // namespace shardlm::cli
