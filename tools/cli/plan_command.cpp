// `shardlm plan`: where each layer of a model would go on real or hypothetical devices, without
// loading any weight. The model is a checkpoint directory (sizes from its safetensors headers) or a
// built-in --random shape; the devices are this machine's (detect_devices) or declared with
// --devices, capped by --max-memory as Accelerate's max_memory caps them. Prints the per-device
// table (or JSON) and fails, saying how much is missing, when the model cannot fit.
#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <memory>

#include "commands.h"
#include "device_map_options.h"
#include "common_options.h"
#include "core/error.h"
#include "io/model_config.h"
#include "io/safetensors.h"
#include "option_checks.h"
#include "plan/device_map/plan_report.h"
#include "plan/device_map/planner.h"
#include "plan/memory_size.h"
#include "plan/parameter_count.h"
#include "plan/tp_plan.h"
#include "plan/tp_plan_summary.h"


namespace shardlm::cli {
namespace {

struct PlanCommandOptions {
  ModelOptions model;
  std::string random_shape;
  std::string device_map = "auto";
  std::string max_memory;
  std::string devices;
  int64_t max_seq_len = 0;
  int batch = 1;
  std::string dtype = "bf16";
  bool json = false;
  bool verbose = false;
  int tp = 0;                   // > 0: show the tensor-parallel plan instead of a device map
  std::string tp_plan = "auto";
  bool expert_parallel = false;
  int cpu_moe_layers = 0;
};

// A built-in shape name (bench/shapes/NAME.json) or a config.json path, as `bench --random` takes.
// nullopt for "stored": every tensor counts in the dtype it has in the checkpoint.
std::optional<DType> parse_load_dtype(const std::string& text) {
  if (text == "stored") return std::nullopt;
  if (text == "bf16") return DType::BF16;
  if (text == "f16") return DType::F16;
  if (text == "f32") return DType::F32;
  fail("--dtype: \"{}\" is not one of bf16, f16, f32, stored", text);
}

std::vector<DeviceBudget> device_budgets(const PlanCommandOptions& options) {
  std::vector<DeviceBudget> budgets = options.devices.empty() ? this_machines_devices() : budgets_from_declaration(options.devices);
  if (!options.max_memory.empty()) budgets = apply_max_memory(budgets, options.max_memory);
  return budgets;
}

// `weights`: the stored tensors the plan is resolved against.
void run_tp_plan(const PlanCommandOptions& options, const ModelConfig& config, const std::string& model_name,
                 const std::vector<WeightSpec>& weights) {
  const TpPlan plan = resolve_tp_plan(config, weights, TpPlanSource::from_argument(options.tp_plan, options.expert_parallel),
                                      options.tp);
  const TpSummary summary = summarize_tp_plan(plan);
  if (options.json) {
    nlohmann::json rows = nlohmann::json::array();
    for (const TpSummaryRow& row : summary.rows)
      rows.push_back({{"weight", row.kind}, {"strategy", row.strategy}, {"placement", placement_name(row.placement)},
                      {"shape", row.shape}, {"rank0_shape", row.rank0_shape}, {"copies", row.n_copies},
                      {"bytes_per_rank", row.bytes_per_rank}});
    fmt::print("{}\n", nlohmann::json{{"model", model_name}, {"tp", summary.tp_size}, {"plan", summary.origin},
                                      {"weights", rows}, {"bytes_per_rank", summary.bytes_per_rank},
                                      {"replicated_bytes", summary.replicated_bytes},
                                      {"all_reduces_per_forward", summary.all_reduces_per_forward},
                                      {"all_gathers_per_forward", summary.all_gathers_per_forward}}
                              .dump(2));
    return;
  }
  fmt::print("model {} ({}, {} layers)\n", model_name, config.architecture_name, config.num_hidden_layers);
  fmt::print("{}", format_tp_summary(summary));
}

void run_plan(const PlanCommandOptions& options) {
  const std::optional<DType> load_dtype = parse_load_dtype(options.dtype);
  std::string model_name;
  ModelConfig config;
  ModelLayout layout;
  // The stored tensors: the checkpoint's header, or, for a --random shape, the tensors the config
  // implies in the load dtype.
  std::vector<WeightSpec> weights;
  if (!options.random_shape.empty()) {
    config = random_shape_config(options.random_shape);
    model_name = "random:" + options.random_shape;
    layout = model_layout_from_config(config, load_dtype.value_or(config.torch_dtype.value_or(DType::BF16)));
    weights = weight_specs(config, load_dtype.value_or(DType::BF16));
  } else {
    const std::filesystem::path dir = prepare_model_dir(options.model);
    config = ModelConfig::from_dir(dir);
    model_name = dir.string();
    const Checkpoint checkpoint = Checkpoint::open(dir);
    layout = model_layout_from_checkpoint(config, checkpoint, load_dtype);
    weights = weight_specs(checkpoint);
  }
  if (options.tp > 0) {
    run_tp_plan(options, config, model_name, weights);
    return;
  }
  const DevicePlan plan = plan_device_map(layout, device_budgets(options),
                                          device_map_plan_options(options.device_map, options.max_seq_len, options.batch, config,
                                                                  options.cpu_moe_layers));
  for (WeightSpec& weight : weights)  // as the layout counts them: narrowed to the load dtype, never widened
    if (load_dtype && dtype_size(*load_dtype) < dtype_size(weight.dtype)) weight.dtype = *load_dtype;
  const ParameterCount count = count_parameters(config, weights);

  if (options.json) {
    nlohmann::json result = {{"model", model_name},
                             {"architecture", config.architecture_name},
                             {"num_hidden_layers", config.num_hidden_layers},
                             {"dtype", options.dtype},
                             {"weight_bytes", layout.total_weight_bytes()}};
    if (config.moe.present()) {
      result["parameters"] = count.total;
      result["active_parameters"] = count.active;
      result["active_bytes"] = count.active_bytes;
      result["bytes_per_expert"] = count.bytes_per_expert;
    }
    result.update(device_plan_to_json(plan));
    fmt::print("{}\n", result.dump(2));
    return;
  }
  fmt::print("model {} ({}, {} layers, {} of weights as {})\n", model_name, config.architecture_name,
             config.num_hidden_layers, format_memory_size(layout.total_weight_bytes()), options.dtype);
  if (config.moe.present())
    fmt::print("experts: {} of {} parameters active per token ({} of weights), {} per expert\n", count.active,
               count.total, format_memory_size(count.active_bytes), format_memory_size(count.bytes_per_expert));
  fmt::print("{}", format_device_plan(plan, options.verbose));
}

}  // namespace

void add_plan_command(CLI::App& app) {
  auto options = std::make_shared<PlanCommandOptions>();
  CLI::App* command = app.add_subcommand("plan", "Show which device each layer would go to, and the memory it takes");
  CLI::Option* model = command->add_option("--model,-m", options->model.model_dir,
                                           "Model directory; default: $SHARDLM_MODEL or the bundled KJV model")
                           ->envname("SHARDLM_MODEL");
  command->add_option("--random", options->random_shape,
                      "Plan a built-in shape instead (bench/shapes: llama3-8b, llama3-70b, qwen2.5-7b, qwen3-8b, "
                      "mistral-7b) or a config.json path")
      ->excludes(model);
  CLI::Option* device_map =
      command->add_option("--device-map", options->device_map,
                          "auto, balanced, balanced_low_0, sequential, a FILE.json mapping module prefixes to devices, "
                          "or that JSON inline")
          ->capture_default_str();
  CLI::Option* max_memory =
      command->add_option("--max-memory", options->max_memory,
                          "Cap per device, e.g. 0=20GiB,1=40GiB,cpu=64GiB,disk or {\"0\": \"20GiB\"}; only the "
                          "devices named are used");
  CLI::Option* devices =
      command->add_option("--devices", options->devices,
                          "Hypothetical devices and their free memory, e.g. cuda:0=80GiB,cuda:1=80GiB,cpu=256GiB,disk "
                          "(default: this machine's)");
  CLI::Option* max_seq_len =
      command->add_option("--max-seq-len", options->max_seq_len,
                          "Tokens per sequence the KV cache holds (default: the model's context, at most 4096)")
          ->check(integer_in(0, INT32_MAX));
  CLI::Option* batch = command->add_option("--batch", options->batch, "Sequences generated together")
                           ->check(integer_in(1, INT32_MAX))
                           ->capture_default_str();
  command->add_option("--dtype", options->dtype,
                      "Weight dtype after loading: bf16 (what the CUDA backend holds), f16, f32, or stored")
      ->capture_default_str();
  command->add_option("--tp", options->tp,
                      "Show the tensor-parallel plan over N ranks instead: each weight's shard, bytes per rank, "
                      "what is replicated")
      ->check(integer_in(1, INT32_MAX));
  // A tensor-parallel plan places no layers and sizes no cache: the device-map options do nothing
  // with --tp, and a plan file does nothing without it.
  const auto [cpu_moe, n_cpu_moe] = add_cpu_moe_options(*command, options->cpu_moe_layers);
  CLI::Option* tp = command->get_option("--tp");
  for (CLI::Option* device_map_option : {device_map, max_memory, devices, max_seq_len, batch, cpu_moe, n_cpu_moe})
    tp->excludes(device_map_option);
  add_tp_plan_options(*command, options->tp_plan, options->expert_parallel);
  command->get_option("--tp-plan")->needs(tp);
  command->get_option("--enable-expert-parallel")->needs(tp);
  command->add_flag("--json", options->json, "Print the plan as JSON");
  command->add_flag("--verbose,-v", options->verbose, "Also print why each module is where it is");
  command->callback([options] { run_plan(*options); });
}

}  // namespace shardlm::cli
