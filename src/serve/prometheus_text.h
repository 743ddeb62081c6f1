// Pieces of Prometheus' text exposition format (version 0.0.4) that every metric type writes:
// numbers as Prometheus' Python client writes them (so `le` labels read "1.0", as vLLM's do, and
// queries written against vLLM's buckets match ours), and the # HELP / # TYPE lines opening a family.
#pragma once

#include <string>
#include <string_view>

namespace shardlm::serve {

inline constexpr char kPrometheusContentType[] = "text/plain; version=0.0.4; charset=utf-8";

// Shortest text that reads back as `value`, with ".0" on whole numbers; "+Inf", "-Inf" or "NaN".
std::string prometheus_number(double value);

// `help` is one of ours, so it holds no backslash or newline for the format to escape.
void append_metric_header(std::string& out, std::string_view name, std::string_view type, std::string_view help);

}  // namespace shardlm::serve
