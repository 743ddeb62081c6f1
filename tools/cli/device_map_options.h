// --device-map and --max-memory as plan and generate take them: the planner's options and the
// devices it may use.
#pragma once

#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include <CLI/CLI.hpp>

#include "io/model_config.h"
#include "plan/device_map/device_budget.h"
#include "plan/device_map/planner.h"

namespace shardlm::cli {

// --device-map: a strategy name, a map file, or the map's JSON inline; max_seq_len 0 means the
// model's context, capped at 4096.
PlanOptions device_map_plan_options(const std::string& device_map, int64_t max_seq_len, int batch,
                                    const ModelConfig& config, int cpu_moe_layers = 0);
// --cpu-moe (every layer's experts in cpu memory) and --n-cpu-moe N (the first N layers'), as
// llama.cpp names them; returns the two options, for the caller's needs/excludes. A GPU then keeps
// the rest of such a layer (attention, router, shared expert) and the CPU runs the chosen experts.
std::pair<CLI::Option*, CLI::Option*> add_cpu_moe_options(CLI::App& command, int& cpu_moe_layers);
// This machine's GPUs (when the build has CUDA) in front of its CPU.
std::vector<DeviceBudget> this_machines_devices();

// What generate and bench take to run a device map.
struct DeviceMapRequest {
  std::string device_map;  // empty: no device map
  std::string max_memory;
  std::string offload_exec = "auto";
  int cpu_moe_layers = 0;  // --cpu-moe / --n-cpu-moe
  // --cuda-devices (bench): the CUDA device each cuda:N of the map runs on; empty: device N.
  std::vector<int> cuda_devices;
};
// --device-map, --max-memory, --offload-exec, and --cpu-moe / --n-cpu-moe, which need a device map.
void add_device_map_options(CLI::App& command, DeviceMapRequest& request);
// --cuda-devices 0,0: a map over two GPUs run on one, to measure its hand-offs where only one is lent.
void add_cuda_devices_option(CLI::App& command, DeviceMapRequest& request);

// Plans the request for the model in dir on this machine (its GPUs only when with_gpus, so a CPU
// run never plans onto one), capped by --max-memory, and prints where the units went on stderr.
// With --cuda-devices the GPUs are the map's cuda:N, each with its device's free memory shared
// evenly among the cuda:N that run on it.
DevicePlan plan_on_this_machine(const DeviceMapRequest& request, const std::filesystem::path& dir,
                                const ModelConfig& config, int64_t max_seq_len, int batch, bool with_gpus);

}  // namespace shardlm::cli
