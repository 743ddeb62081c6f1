// The GPUs this process can see, as device-map budgets (their free memory now).
#pragma once

#include <vector>

#include "parallel/device_map/device_budget.h"

namespace shardlm::cuda {

// One budget per visible CUDA device, in ordinal order; empty when there is none (or no driver).
std::vector<DeviceBudget> detect_cuda_devices();

}  // namespace shardlm::cuda
