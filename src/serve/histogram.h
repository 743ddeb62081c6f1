// A Prometheus histogram: how many observations fell at or below each upper bound, their sum and
// their count, written as cumulative `_bucket{le="..."}` lines ending with le="+Inf", then `_sum`
// and `_count`. Not thread-safe: ServerMetrics guards its histograms with its own mutex.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace shardlm::serve {

class Histogram {
 public:
  // `upper_bounds` strictly ascending and finite; the +Inf bucket is implied. Throws Error otherwise.
  explicit Histogram(std::vector<double> upper_bounds);

  void observe(double value);
  // Appends the family `name`: its # HELP and # TYPE lines, then its samples.
  void render(std::string_view name, std::string_view help, std::string& out) const;

 private:
  std::vector<double> upper_bounds_;
  // Per bucket and not cumulative, so an observation touches one entry; the last is the +Inf bucket.
  std::vector<uint64_t> counts_;
  double sum_ = 0;
};

}  // namespace shardlm::serve
