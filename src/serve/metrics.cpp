#include "serve/metrics.h"

#include <fmt/format.h>

#include <iterator>
#include <string_view>
#include <vector>

#include "serve/prometheus_text.h"

namespace shardlm::serve {
namespace {

// vLLM's buckets (vllm/v1/metrics/loggers.py), so that percentiles compare across the two servers.
const std::vector<double> kTimeToFirstTokenBuckets = {0.001, 0.005, 0.01, 0.02,  0.04,  0.06,  0.08, 0.1,
                                                      0.25,  0.5,   0.75, 1.0,   2.5,   5.0,   7.5,  10.0,
                                                      20.0,  40.0,  80.0, 160.0, 640.0, 2560.0};
// vLLM's with three finer ones below its first (10 ms): a small model on one GPU decodes a token in
// a few milliseconds, and every token would land in that first bucket.
const std::vector<double> kInterTokenLatencyBuckets = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1,
                                                       0.15,  0.2,    0.3,   0.4,  0.5,   0.75, 1.0,   2.5,
                                                       5.0,   7.5,    10.0,  20.0, 40.0,  80.0};
const std::vector<double> kE2eRequestLatencyBuckets = {0.3,  0.5,   0.8,   1.0,   1.5,   2.0,    2.5,
                                                       5.0,  10.0,  15.0,  20.0,  30.0,  40.0,   50.0,
                                                       60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0};
// vLLM's (vllm:iteration_tokens_total) up to a step of --max-num-batched-tokens 16384.
const std::vector<double> kIterationTokensBuckets = {1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384};

constexpr const char* kEndLabels[] = {"stop", "length", "cancelled", "error"};  // by RequestEnd
static_assert(std::size(kEndLabels) == size_t(RequestEnd::error) + 1);

// A family of one unlabelled sample: a gauge or a counter.
void append_scalar(std::string& out, std::string_view name, std::string_view type, std::string_view help,
                   const std::string& value) {
  append_metric_header(out, name, type, help);
  out += fmt::format("{} {}\n", name, value);
}

}  // namespace

ServerMetrics::ServerMetrics()
    : time_to_first_token_(kTimeToFirstTokenBuckets),
      inter_token_latency_(kInterTokenLatencyBuckets),
      e2e_request_latency_(kE2eRequestLatencyBuckets),
      iteration_tokens_(kIterationTokensBuckets),
      engine_step_(kInterTokenLatencyBuckets) {}

void ServerMetrics::record_load(const EngineLoad& load) {
  const std::lock_guard lock(mutex_);
  load_ = load;
}

void ServerMetrics::record_first_token(int prompt_tokens, double seconds) {
  const std::lock_guard lock(mutex_);
  prompt_tokens_ += uint64_t(prompt_tokens);
  ++generation_tokens_;
  time_to_first_token_.observe(seconds);
}

void ServerMetrics::record_next_token(double seconds) {
  const std::lock_guard lock(mutex_);
  ++generation_tokens_;
  inter_token_latency_.observe(seconds);
}

void ServerMetrics::record_end(RequestEnd end, double seconds) {
  const std::lock_guard lock(mutex_);
  ++ends_[size_t(end)];
  // Only a request the engine completed has a latency worth a percentile; a cancelled one lasted
  // as long as its client chose to wait.
  if (end == RequestEnd::stop || end == RequestEnd::length) e2e_request_latency_.observe(seconds);
}

void ServerMetrics::record_step(const StepTimes& step) {
  const std::lock_guard lock(mutex_);
  iteration_tokens_.observe(step.tokens);
  engine_step_.observe(step.engine_seconds);
  step_host_seconds_ += step.host_seconds;
}

std::string ServerMetrics::render() const {
  const std::lock_guard lock(mutex_);
  std::string out;
  append_scalar(out, "shardlm:num_requests_running", "gauge", "Number of requests in model execution batches.",
                std::to_string(load_.running));
  append_scalar(out, "shardlm:num_requests_waiting", "gauge", "Number of requests waiting to be processed.",
                std::to_string(load_.waiting));
  append_scalar(out, "shardlm:kv_cache_usage_perc", "gauge", "KV-cache usage. 1 means 100 percent usage.",
                prometheus_number(load_.kv_cache_usage));
  append_scalar(out, "shardlm:kv_cache_blocks_used", "gauge", "KV-cache blocks (--block-size tokens) in use.",
                std::to_string(load_.kv_cache_blocks_used));
  append_scalar(out, "shardlm:prefix_cache_queries_total", "counter",
                "Prefix cache queries, in terms of number of queried tokens.", std::to_string(load_.prefix_cache_queries));
  append_scalar(out, "shardlm:prefix_cache_hits_total", "counter",
                "Prefix cache hits, in terms of number of cached tokens.", std::to_string(load_.prefix_cache_hits));
  append_scalar(out, "shardlm:num_preemptions_total", "counter", "Cumulative number of preemptions from the engine.",
                std::to_string(load_.preemptions));
  append_scalar(out, "shardlm:prompt_tokens_total", "counter", "Number of prefill tokens processed.",
                std::to_string(prompt_tokens_));
  append_scalar(out, "shardlm:generation_tokens_total", "counter", "Number of generation tokens processed.",
                std::to_string(generation_tokens_));
  append_metric_header(out, "shardlm:request_success_total", "counter",
                       "Count of requests that left the engine, by how they finished.");
  for (size_t end = 0; end < ends_.size(); ++end)
    out += fmt::format("shardlm:request_success_total{{finished_reason=\"{}\"}} {}\n", kEndLabels[end], ends_[end]);
  time_to_first_token_.render("shardlm:time_to_first_token_seconds", "Histogram of time to first token in seconds.",
                              out);
  inter_token_latency_.render("shardlm:inter_token_latency_seconds", "Histogram of inter-token latency in seconds.",
                              out);
  e2e_request_latency_.render("shardlm:e2e_request_latency_seconds", "Histogram of e2e request latency in seconds.",
                              out);
  iteration_tokens_.render("shardlm:iteration_tokens_total", "Histogram of number of tokens per engine_step.", out);
  engine_step_.render("shardlm:engine_step_seconds", "Histogram of the engine's time per step, in seconds.", out);
  append_scalar(out, "shardlm:step_host_seconds_total", "counter",
                "Seconds the engine thread spent around its steps: scheduling, detokenising, handing out tokens.",
                prometheus_number(step_host_seconds_));
  return out;
}

}  // namespace shardlm::serve
