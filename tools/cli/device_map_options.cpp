// Shared by `plan`, `generate` and `bench`: one reading of --device-map, and the devices this
// machine has.
#include "device_map_options.h"

#include <fmt/core.h>

#include <algorithm>

#include "core/error.h"
#include "option_checks.h"
#include "plan/device_map/explicit_map.h"
#include "plan/device_map/model_layout.h"
#include "plan/device_map/offload_policy.h"
#ifdef SHARDLM_WITH_CUDA
#include "backend/cuda/device_query.h"
#endif

namespace shardlm::cli {

PlanOptions device_map_plan_options(const std::string& device_map, int64_t max_seq_len, int batch,
                                    const ModelConfig& config, int cpu_moe_layers) {
  PlanOptions plan;
  plan.cpu_moe_layers = cpu_moe_layers;
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
  CLI::Option* device_map =
      command.add_option("--device-map", request.device_map,
                         "Place whole layers as `shardlm plan` does: auto, balanced, balanced_low_0, sequential, or a "
                         "FILE.json / inline JSON map of module prefixes to 0, cuda:1, cpu or disk");
  // Without a device map these would be ignored, and a typo in them never noticed: refused instead.
  command
      .add_option("--max-memory", request.max_memory,
                  "Cap per device for --device-map, e.g. 0=8GiB,cpu=64GiB,disk (only the devices named are used)")
      ->needs(device_map);
  command
      .add_option("--offload-exec", request.offload_exec,
                  "How layers on cpu or disk run with a GPU: stream (copied to the GPU just in time), cpu (the "
                  "CPU computes them), auto (per step, whichever measures faster)")
      ->needs(device_map)
      ->capture_default_str();
  const auto [cpu_moe, n_cpu_moe] = add_cpu_moe_options(command, request.cpu_moe_layers);
  cpu_moe->needs(device_map);
  n_cpu_moe->needs(device_map);
}

std::pair<CLI::Option*, CLI::Option*> add_cpu_moe_options(CLI::App& command, int& cpu_moe_layers) {
  CLI::Option* all = command.add_flag_callback(
      "--cpu-moe", [&cpu_moe_layers] { cpu_moe_layers = INT32_MAX; },
      "Mixture-of-experts models: keep every layer's experts in cpu memory (the cpu computes the chosen ones; "
      "attention, router and shared expert stay where the device map puts their layer)");
  CLI::Option* first = command
                           .add_option("--n-cpu-moe", cpu_moe_layers,
                                       "Like --cpu-moe for the experts of the first N layers only")
                           ->check(integer_in(1, INT32_MAX));
  all->excludes(first);
  return {all, first};
}

void add_cuda_devices_option(CLI::App& command, DeviceMapRequest& request) {
  command
      .add_option("--cuda-devices", request.cuda_devices,
                  "The CUDA device each cuda:N of --device-map runs on, e.g. 0,0 runs a two-GPU map on one GPU "
                  "(each gets its own workspace and hand-offs; the device's memory is shared); with --tp N, the "
                  "GPU of each rank, in place of --device's index (0,0: two ranks on one GPU, their all-reduces through host "
                  "memory)")
      ->delimiter(',')
      ->check(integer_in(0, INT32_MAX));
}

namespace {

// The map's cuda:N as the GPUs to plan onto, each with a share of its device's free memory.
std::vector<DeviceBudget> mapped_gpus(const std::vector<int>& cuda_devices, const std::vector<DeviceBudget>& gpus) {
  std::vector<DeviceBudget> budgets;
  for (size_t logical = 0; logical < cuda_devices.size(); ++logical) {
    const int device = cuda_devices[logical];
    if (device >= int(gpus.size()))
      fail("--cuda-devices: cuda:{} is to run on CUDA device {}, but {} are visible", logical, device, gpus.size());
    const int64_t sharing = std::count(cuda_devices.begin(), cuda_devices.end(), device);
    budgets.push_back({DeviceId::cuda(int(logical)), *gpus[size_t(device)].bytes / sharing,
                       fmt::format("free memory of CUDA device {} / {}", device, sharing)});
  }
  return budgets;
}

}  // namespace

DevicePlan plan_on_this_machine(const DeviceMapRequest& request, const std::filesystem::path& dir,
                                const ModelConfig& config, int64_t max_seq_len, int batch, bool with_gpus) {
  parse_offload_exec(request.offload_exec);  // a typo fails before anything is planned or loaded
  // On the CPU every expert is in cpu memory already: the option would only skew the plan.
  if (!with_gpus && request.cpu_moe_layers > 0)
    fail("--cpu-moe / --n-cpu-moe keep experts in cpu memory while a GPU runs the rest of their layers: they need "
         "--device cuda:N");
  std::vector<DeviceBudget> budgets = with_gpus ? this_machines_devices() : detect_devices();
  if (with_gpus && !request.cuda_devices.empty()) {
    std::vector<DeviceBudget> gpus, hosts;
    for (DeviceBudget& budget : budgets) (budget.device.is_gpu() ? gpus : hosts).push_back(std::move(budget));
    budgets = mapped_gpus(request.cuda_devices, gpus);
    for (DeviceBudget& budget : hosts) budgets.push_back(std::move(budget));
  }
  if (!request.max_memory.empty()) budgets = apply_max_memory(budgets, request.max_memory);
  const ModelLayout layout = model_layout_from_checkpoint(config, Checkpoint::open(dir), std::nullopt);
  const DevicePlan plan =
      plan_device_map(layout, budgets,
                      device_map_plan_options(request.device_map, max_seq_len, batch, config, request.cpu_moe_layers));
  std::string summary;
  for (const DeviceUsage& usage : plan.devices) {
    if (usage.layers.empty() && usage.other_modules.empty()) continue;
    std::string what = usage.layers.empty() ? "" : "layers " + format_layer_ranges(usage.layers);
    for (const std::string& module : usage.other_modules) what += (what.empty() ? "" : ", ") + module;
    summary += fmt::format("{}{}: {}", summary.empty() ? "" : "; ", usage.device.name(), what);
  }
  std::vector<int> expert_layers;
  for (size_t il = 0; il < plan.placement.experts_in_cpu.size(); ++il)
    if (plan.placement.experts_in_cpu[il]) expert_layers.push_back(int(il));
  if (!expert_layers.empty()) summary += "; experts of layers " + format_layer_ranges(expert_layers) + " in cpu memory";
  fmt::print(stderr, "[shardlm] device map ({}): {}\n", strategy_name(plan.applied), summary);
  return plan;
}

}  // namespace shardlm::cli
