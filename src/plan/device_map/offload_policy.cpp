// The cost model behind --offload-exec auto (see offload_policy.h).
#include "plan/device_map/offload_policy.h"

#include <algorithm>

#include "core/error.h"

namespace shardlm {
namespace {

// A CPU step slower than this multiple of its bandwidth floor is taken as compute-bound.
constexpr double kComputeBoundFactor = 1.5;
// A one-row CPU step is tried (first, and again every kStreamStepsBeforeCpuRetry streamed ones) if
// the probe's estimate is within this multiple of streaming.
constexpr double kTryCpuFactor = 2.0;

}  // namespace

std::string_view offload_exec_name(OffloadExec exec) {
  switch (exec) {
    case OffloadExec::STREAM: return "stream";
    case OffloadExec::CPU: return "cpu";
    case OffloadExec::AUTO: return "auto";
  }
  return "?";
}

OffloadExec parse_offload_exec(std::string_view text) {
  for (OffloadExec exec : {OffloadExec::STREAM, OffloadExec::CPU, OffloadExec::AUTO})
    if (text == offload_exec_name(exec)) return exec;
  fail("--offload-exec: expected stream, cpu or auto, got \"{}\"", text);
}

int overlapped_tail_units(std::span<const double> copy_bytes, std::span<const double> cpu_bytes, int slots,
                          const OffloadSpeeds& speeds) {
  if (speeds.host_to_device_gbps <= 0 || speeds.cpu_read_gbps <= 0) return 0;
  if (copy_bytes.size() != cpu_bytes.size()) fail("overlapped_tail_units: {} units to copy, {} to read", copy_bytes.size(), cpu_bytes.size());
  double cpu_total = 0;
  for (double bytes : cpu_bytes) cpu_total += bytes;
  int tail = 0;
  double tail_copy = 0, tail_cpu = 0;
  while (tail < slots && tail + 1 < int(copy_bytes.size())) {
    const size_t unit = copy_bytes.size() - 1 - size_t(tail);
    const double copied = tail_copy + copy_bytes[unit], left_to_cpu = cpu_total - tail_cpu - cpu_bytes[unit];
    if (copied / speeds.host_to_device_gbps > left_to_cpu / speeds.cpu_read_gbps) break;
    tail_copy = copied;
    tail_cpu += cpu_bytes[unit];
    ++tail;
  }
  return tail;
}

OffloadPolicy::OffloadPolicy(OffloadExec exec, const OffloadSpeeds& speeds)
    : exec_(exec),
      speeds_(speeds),
      probe_floor_seconds_(speeds.cpu_read_gbps > 0 ? speeds.cpu_row_bytes / (speeds.cpu_read_gbps * 1e9) : 0.0),
      cpu_floor_seconds_(probe_floor_seconds_),
      cpu_seconds_per_row_(speeds.cpu_gflops > 0 ? 2.0 * speeds.cpu_row_params / (speeds.cpu_gflops * 1e9) : 0.0) {}

double OffloadPolicy::stream_seconds() const {
  return speeds_.host_to_device_gbps > 0 ? speeds_.offloaded_bytes / (speeds_.host_to_device_gbps * 1e9) : 0.0;
}

double OffloadPolicy::cpu_seconds(int n_rows) const {
  return std::max(cpu_floor_seconds_, cpu_seconds_per_row_ * n_rows);
}

bool OffloadPolicy::retry_due() const {
  return n_one_row_measured_ > 0 && one_row_streamed_since_cpu_ >= kStreamStepsBeforeCpuRetry;
}

OffloadExec OffloadPolicy::choose(int n_rows) const {
  if (exec_ != OffloadExec::AUTO) return exec_;
  if (n_rows == 1) {
    const double try_below = kTryCpuFactor * stream_seconds();
    if (n_one_row_measured_ == 0 && cpu_seconds(1) < try_below) return OffloadExec::CPU;
    // Retried on the probe's word, not the measurements': they are what may have been disturbed.
    if (retry_due() && probe_floor_seconds_ < try_below) return OffloadExec::CPU;
  }
  return cpu_seconds(n_rows) < stream_seconds() ? OffloadExec::CPU : OffloadExec::STREAM;
}

void OffloadPolicy::observe_cpu(int n_rows, double seconds) {
  if (n_rows != 1) {
    if (seconds > kComputeBoundFactor * cpu_floor_seconds_) cpu_seconds_per_row_ = seconds / n_rows;
    return;
  }
  // A retry that beats streaming means the host has calmed down: the slow steps before it no
  // longer count (with them, the median would keep streaming for another retry).
  if (retry_due() && seconds < stream_seconds()) n_one_row_measured_ = 0;
  recent_one_row_seconds_[size_t(n_one_row_measured_ % 3)] = seconds;
  ++n_one_row_measured_;
  one_row_streamed_since_cpu_ = 0;
  const auto& [a, b, c] = recent_one_row_seconds_;
  if (n_one_row_measured_ == 1) cpu_floor_seconds_ = a;
  else if (n_one_row_measured_ == 2) cpu_floor_seconds_ = std::min(a, b);
  else cpu_floor_seconds_ = std::max(std::min(a, b), std::min(std::max(a, b), c));  // the median
}

void OffloadPolicy::observe_stream(int n_rows) {
  if (n_rows == 1) one_row_streamed_since_cpu_ = std::min(one_row_streamed_since_cpu_ + 1, kStreamStepsBeforeCpuRetry);
}

}  // namespace shardlm
