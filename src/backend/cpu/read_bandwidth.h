// Measures how fast the CPU threads can stream memory, the bound on decode speed: every decoded
// token reads every weight once.
#pragma once

#include <cstddef>
#include <memory>

namespace shardlm::cpu {

// A buffer kept for repeated measurements, so that a benchmark can sample the bandwidth around
// its timed work (on a shared host it moves with the other tenants' load) without paying for
// the first touch of a gigabyte each time.
class ReadBandwidthProbe {
 public:
  // Larger than the last-level cache several times over (300 MiB on the GPU hosts seen so far),
  // so that no pass is served from cache.
  static constexpr size_t kDefaultBytes = size_t(1) << 30;

  explicit ReadBandwidthProbe(size_t bytes = kDefaultBytes);
  // Best of `passes` GB/s (1e9 bytes/s) for all OpenMP threads summing the buffer: the best pass
  // filters out scheduling noise within one measurement.
  double measure(int passes = 5) const;

 private:
  struct FreeDeleter {
    void operator()(float* data) const;
  };
  std::unique_ptr<float[], FreeDeleter> buffer_;
  size_t n_floats_;
};

// One measurement with a fresh probe.
double measure_read_bandwidth();

}  // namespace shardlm::cpu
