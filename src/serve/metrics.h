// What `GET /metrics` reports: vLLM's serving series under a `shardlm:` prefix (vLLM's dashboards
// and alerts apply once the prefix is changed), in Prometheus' text format. The engine thread
// records as it produces tokens and the connections' thread renders, so one mutex guards it all: a
// step records a few values per request and a scrape reads them every few seconds, far too seldom
// for the lock to be contended.
//
// Not reported yet: vLLM's prefix-cache hit rate, since there is no prefix cache to hit.
#pragma once

#include <array>
#include <cstdint>
#include <mutex>
#include <string>

#include "serve/histogram.h"

namespace shardlm::serve {

// How a request left the engine: the `finished_reason` label of shardlm:request_success_total.
// `cancelled`: its client went away; `error`: the engine failed or the server stopped under it.
enum class RequestEnd { stop, length, cancelled, error };

class ServerMetrics {
 public:
  ServerMetrics();

  // After each step: requests with a sequence slot, requests waiting for one, and the share of the
  // KV cache the running ones hold (0..1).
  void record_load(int running, int waiting, double kv_cache_usage);
  // A request's first token, `seconds` after it was submitted: its whole prompt has been prefilled.
  void record_first_token(int prompt_tokens, double seconds);
  // Each later token, `seconds` after the same request's previous one.
  void record_next_token(double seconds);
  // The request left the engine `seconds` after it was submitted.
  void record_end(RequestEnd end, double seconds);

  // Every series in Prometheus' text exposition format, version 0.0.4 (kPrometheusContentType).
  std::string render() const;

 private:
  mutable std::mutex mutex_;
  int running_ = 0, waiting_ = 0;
  double kv_cache_usage_ = 0;
  uint64_t prompt_tokens_ = 0, generation_tokens_ = 0;
  std::array<uint64_t, 4> ends_{};  // by RequestEnd
  Histogram time_to_first_token_, inter_token_latency_, e2e_request_latency_;
};

}  // namespace shardlm::serve
