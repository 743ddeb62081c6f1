// --device-map and --max-memory as plan and generate take them: the planner's options and the
// devices it may use.
#pragma once

#include <string>
#include <vector>

#include "io/model_config.h"
#include "parallel/device_map/device_budget.h"
#include "parallel/device_map/planner.h"

namespace shardlm::cli {

// --device-map: a strategy name, a map file, or the map's JSON inline; max_seq_len 0 means the
// model's context, capped at 4096.
PlanOptions device_map_plan_options(const std::string& device_map, int64_t max_seq_len, int batch,
                                    const ModelConfig& config);
// This machine's GPUs (when the build has CUDA) in front of its CPU.
std::vector<DeviceBudget> this_machines_devices();

}  // namespace shardlm::cli
