#include "serve/histogram.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <utility>

#include "core/error.h"
#include "serve/prometheus_text.h"

namespace shardlm::serve {

Histogram::Histogram(std::vector<double> upper_bounds)
    : upper_bounds_(std::move(upper_bounds)), counts_(upper_bounds_.size() + 1, 0) {
  for (size_t i = 0; i < upper_bounds_.size(); ++i) {
    if (!std::isfinite(upper_bounds_[i])) fail("histogram bucket {} is not finite", i);
    if (i > 0 && upper_bounds_[i] <= upper_bounds_[i - 1])
      fail("histogram buckets must ascend: {} follows {}", upper_bounds_[i], upper_bounds_[i - 1]);
  }
}

void Histogram::observe(double value) {
  // Prometheus buckets are "less than or equal": a value on a bound counts in that bound's bucket.
  const auto bucket = std::lower_bound(upper_bounds_.begin(), upper_bounds_.end(), value);
  ++counts_[size_t(bucket - upper_bounds_.begin())];
  sum_ += value;
}

void Histogram::render(std::string_view name, std::string_view help, std::string& out) const {
  append_metric_header(out, name, "histogram", help);
  uint64_t cumulative = 0;
  for (size_t i = 0; i < upper_bounds_.size(); ++i) {
    cumulative += counts_[i];
    out += fmt::format("{}_bucket{{le=\"{}\"}} {}\n", name, prometheus_number(upper_bounds_[i]), cumulative);
  }
  cumulative += counts_.back();
  out += fmt::format("{}_bucket{{le=\"+Inf\"}} {}\n", name, cumulative);
  out += fmt::format("{}_sum {}\n{}_count {}\n", name, prometheus_number(sum_), name, cumulative);
}

}  // namespace shardlm::serve
