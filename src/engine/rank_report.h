// What a rank's loading cost and what its device holds, for benchmarks and people.
#pragma once

#include <cstddef>
#include <optional>

#include "plan/device_map/offload_report.h"

namespace shardlm {

struct RankReport {
  // Weights copied from the checkpoint to the device at load (none on the CPU, which reads them in
  // place, or with random weights).
  double load_seconds = 0, load_bytes = 0;
  size_t device_memory_used = 0;         // bytes in use now on the rank's GPUs
  std::optional<OffloadReport> offload;  // a device map that offloads units to cpu or disk
  HostExpertTimes host_experts;          // experts kept in cpu memory
};

}  // namespace shardlm
