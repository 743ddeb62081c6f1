// What a device map's offloaded units cost and how the steps ran them (--offload-exec), as a
// backend reports it after a run.
#pragma once

#include <cstdint>

#include "plan/device_map/offload_policy.h"

namespace shardlm {

struct OffloadReport {
  OffloadSpeeds speeds;  // zero bytes: nothing offloaded
  OffloadExec exec = OffloadExec::AUTO;
  int64_t stream_steps = 0, cpu_steps = 0;
  int overlapped_tail_units = 0;  // offloaded units a CPU step leaves to the GPU (auto)
  double cpu_step_bytes = 0;      // offloaded weights a one-row CPU step reads on the host (all but the tail; chosen experts only)
  // Host compute time of the CPU steps of one row (decode at batch 1), for its achieved bandwidth:
  // in all, and the fastest (what the CPU does while the host's other tenants are quiet).
  double cpu_one_row_seconds = 0;
  double cpu_one_row_seconds_fastest = 0;
  int64_t cpu_one_row_steps = 0;
};

// Experts kept in cpu memory (--cpu-moe, --n-cpu-moe): where a one-row step's sparse layers spent
// their time on the host, summed over every such layer call (warm-up included).
struct HostExpertTimes {
  int64_t one_row_calls = 0;
  double compute_seconds = 0;  // the CPU running the chosen experts
  double wait_seconds = 0;     // waiting for the GPU to hand over the layer's rows and routes

  HostExpertTimes& operator+=(const HostExpertTimes& other) {
    one_row_calls += other.one_row_calls;
    compute_seconds += other.compute_seconds;
    wait_seconds += other.wait_seconds;
    return *this;
  }
  // What was added since `earlier`, a reading of the same counters.
  HostExpertTimes operator-(const HostExpertTimes& earlier) const {
    return {one_row_calls - earlier.one_row_calls, compute_seconds - earlier.compute_seconds,
            wait_seconds - earlier.wait_seconds};
  }
};

}  // namespace shardlm
