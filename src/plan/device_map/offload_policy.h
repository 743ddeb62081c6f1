// How layers that a device map puts on cpu or disk run (--offload-exec): streamed to a GPU just in
// time, computed by the CPU backend, or, with auto, whichever the measured speeds say is faster for
// the rows of each step. Streaming costs the offloaded bytes over host-to-device bandwidth whatever
// the rows; the CPU costs at least the bytes over its read bandwidth, and more once the rows make it
// compute-bound (long prefills). Both CPU costs are replaced by measurements as CPU steps run: a
// one-row step measures the bandwidth-bound cost, a compute-bound one the cost per row. Until a
// one-row step has been measured, the first one runs on the CPU whenever the estimate is within
// twice the streaming time: the read-bandwidth probe behind the estimate moves with the host's other
// load (51 to 110 GB/s within minutes on one machine), and streaming alone would never correct it.
// The one-row cost is the median of the last three measurements (the smaller of two), so a single
// slow step (a cold first one, a burst of the host's other work) does not turn decode to streaming;
// and while it streams one-row steps, every kStreamStepsBeforeCpuRetry-th runs on the CPU again
// (when the probe says the CPU could compete) to find out whether the host has calmed down; a retry
// that beats streaming starts the measurements afresh.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string_view>

namespace shardlm {

enum class OffloadExec { STREAM, CPU, AUTO };

std::string_view offload_exec_name(OffloadExec exec);  // "stream", "cpu", "auto"
// "stream", "cpu" or "auto"; anything else is an error naming --offload-exec.
OffloadExec parse_offload_exec(std::string_view text);

struct OffloadSpeeds {
  double offloaded_bytes = 0;   // weights on cpu or disk, as the checkpoint stores them: what streaming copies
  double offloaded_params = 0;  // their elements
  double host_to_device_gbps = 0;
  double cpu_read_gbps = 0;
  double cpu_gflops = 0;         // assumed matrix speed of all CPU threads, until one is measured
  // What a row computed on the CPU reads of them and multiplies (two flops per element): all of it
  // but the experts it does not choose (top_k of a MoE layer's num_experts).
  double cpu_row_bytes = 0, cpu_row_params = 0;
};

// How many of the offloaded units (in execution order, the head last if offloaded) a CPU step
// under auto leaves to the GPU: the copy engine brings their weights over (copy_bytes) while the
// CPU computes the units before them (reading cpu_bytes of each), so they cost the CPU no reads
// when the copy is done in time. At most `slots` units (what the streamer holds at once), never
// every unit, and only while their copy takes no longer than the CPU's work on the rest.
int overlapped_tail_units(std::span<const double> copy_bytes, std::span<const double> cpu_bytes, int slots,
                          const OffloadSpeeds& speeds);

class OffloadPolicy {
 public:
  OffloadPolicy(OffloadExec exec, const OffloadSpeeds& speeds);

  OffloadExec exec() const { return exec_; }
  const OffloadSpeeds& speeds() const { return speeds_; }
  // STREAM or CPU for a step of n_rows rows.
  OffloadExec choose(int n_rows) const;
  double stream_seconds() const;
  double cpu_seconds(int n_rows) const;
  // A CPU step's measured time.
  void observe_cpu(int n_rows, double seconds);
  // A streamed step of n_rows rows ran.
  void observe_stream(int n_rows);

  static constexpr int kStreamStepsBeforeCpuRetry = 32;

 private:
  bool retry_due() const;

  OffloadExec exec_;
  OffloadSpeeds speeds_;
  double probe_floor_seconds_;  // the offloaded bytes over the probe's read bandwidth
  double cpu_floor_seconds_;    // a step of one row (bandwidth-bound)
  double cpu_seconds_per_row_;  // once compute-bound
  std::array<double, 3> recent_one_row_seconds_{};  // a ring, newest at (n_one_row_measured_ - 1) % 3
  int n_one_row_measured_ = 0;
  int one_row_streamed_since_cpu_ = 0;
};

}  // namespace shardlm
