// Shared by `plan`, `generate` and `bench`: one reading of --device-map, and the devices this
// machine has.
#include "device_map_options.h"

#include <fmt/core.h>

#include <algorithm>

#include "core/error.h"
#include "parallel/device_map/explicit_map.h"
#include "parallel/device_map/model_layout.h"
#include "parallel/device_map/offload_policy.h"
#ifdef SHARDLM_WITH_CUDA
#include "backend/cuda/device_query.h"
#endif

namespace shardlm::cli {

PlanOptions device_map_plan_options(const std::string& device_map, int64_t max_seq_len, int batch,
                                    const ModelConfig& config) {
  PlanOptions plan;
  if (const std::optional<DeviceMapStrategy> strategy = parse_device_map_strategy(device_map)) {
    plan.strategy = *strategy;
  } else {
    plan.strategy = DeviceMapStrategy::EXPLICIT;
    plan.explicit_map = device_map.starts_with('{') ? parse_explicit_device_map(device_map, "--device-map")
                                                    : read_explicit_device_map(device_map);
  }
  // The CUDA model's own default: the model's context, capped at 4096.
  if (max_seq_len < 0) fail("--max-seq-len must be >= 1, got {}", max_seq_len);
  plan.max_seq_len = max_seq_len > 0 ? max_seq_len : std::min<int64_t>(config.max_position_embeddings, 4096);
  if (plan.max_seq_len > config.max_position_embeddings)
    fail("--max-seq-len {} exceeds the model's max_position_embeddings {}", plan.max_seq_len,
         config.max_position_embeddings);
  plan.batch = batch;
  return plan;
}

std::vector<DeviceBudget> this_machines_devices() {
  std::vector<DeviceBudget> budgets;
#ifdef SHARDLM_WITH_CUDA
  budgets = cuda::detect_cuda_devices();
#endif
  for (DeviceBudget& budget : detect_devices()) budgets.push_back(std::move(budget));
  return budgets;
}

void add_device_map_options(CLI::App& command, DeviceMapRequest& request) {
  command.add_option("--device-map", request.device_map,
                     "Place whole layers as `shardlm plan` does: auto, balanced, balanced_low_0, sequential, or a "
                     "FILE.json / inline JSON map of module prefixes to 0, cuda:1, cpu or disk");
  command.add_option("--max-memory", request.max_memory,
                     "Cap per device for --device-map, e.g. 0=8GiB,cpu=64GiB,disk (only the devices named are used)");
  command.add_option("--offload-exec", request.offload_exec,
                     "How layers on cpu or disk run with a GPU: stream (copied to the GPU just in time), cpu (the "
                     "CPU computes them), auto (per step, whichever measures faster)")
      ->capture_default_str();
}

DevicePlan plan_on_this_machine(const DeviceMapRequest& request, const std::filesystem::path& dir,
                                const ModelConfig& config, int64_t max_seq_len, int batch, bool with_gpus) {
  parse_offload_exec(request.offload_exec);  // a typo fails before anything is planned or loaded
  std::vector<DeviceBudget> budgets = with_gpus ? this_machines_devices() : detect_devices();
  if (!request.max_memory.empty()) budgets = apply_max_memory(budgets, request.max_memory);
  const ModelLayout layout = model_layout_from_checkpoint(config, Checkpoint::open(dir), std::nullopt);
  const DevicePlan plan =
      plan_device_map(layout, budgets, device_map_plan_options(request.device_map, max_seq_len, batch, config));
  std::string summary;
  for (const DeviceUsage& usage : plan.devices) {
    if (usage.layers.empty() && usage.other_modules.empty()) continue;
    std::string what = usage.layers.empty() ? "" : "layers " + format_layer_ranges(usage.layers);
    for (const std::string& module : usage.other_modules) what += (what.empty() ? "" : ", ") + module;
    summary += fmt::format("{}{}: {}", summary.empty() ? "" : "; ", usage.device.name(), what);
  }
  fmt::print(stderr, "[shardlm] device map ({}): {}\n", strategy_name(plan.applied), summary);
  return plan;
}

}  // namespace shardlm::cli
