// The GPUs this process can see: as device-map budgets (their free memory now), and which of them
// reach each other's memory directly.
#pragma once

#include <vector>

#include "plan/device_map/device_budget.h"

namespace shardlm::cuda {

// One budget per visible CUDA device, in ordinal order; empty when there is none (or no driver).
std::vector<DeviceBudget> detect_cuda_devices();

// Fails unless CUDA device `index` is visible, saying which device --device asked for, how many
// are visible and, when none is, the driver's reason; checked before any CUDA call could fail
// with only the runtime's error code.
void require_cuda_device(int index);

// Whether `device` can read and write `peer`'s memory directly (NVLink or PCIe peer-to-peer); false
// for the device itself and when the driver cannot tell.
bool can_access_peer(int device, int peer);

// Lets kernels on `device` use `peer`'s memory; enabling it twice is not an error.
void enable_peer_access(int device, int peer);

}  // namespace shardlm::cuda
