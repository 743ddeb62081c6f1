// What `GET /metrics` reports: vLLM's serving series under a `shardlm:` prefix (vLLM's dashboards
// and alerts apply once the prefix is changed), in Prometheus' text format. The engine thread
// records as it produces tokens and the connections' thread renders, so one mutex guards it all: a
// step records a few values per request and a scrape reads them every few seconds, far too seldom
// for the lock to be contended.
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

// The engine's state after a step, as the scheduler and the KV cache report it.
struct EngineLoad {
  int running = 0, waiting = 0;  // requests with a sequence slot, requests queued for one
  double kv_cache_usage = 0;     // the share (0..1) of KV blocks sequences hold
  int kv_cache_blocks_used = 0;
  uint64_t prefix_cache_queries = 0, prefix_cache_hits = 0;  // prompt tokens looked up, found cached
  uint64_t preemptions = 0;
};

// One engine step as the loop saw it: where a step's time goes when the server is busy.
struct StepTimes {
  int tokens = 0;             // put through the model: decode rows and prompt chunk tokens
  double engine_seconds = 0;  // the engine's pass over them (the GPU's work, on a GPU)
  double host_seconds = 0;    // the rest: scheduling, detokenising, handing tokens to connections
};

class ServerMetrics {
 public:
  ServerMetrics();

  // After each step.
  void record_load(const EngineLoad& load);
  // A request's first token, `seconds` after it was submitted: its whole prompt has been prefilled.
  void record_first_token(int prompt_tokens, double seconds);
  // Each later token, `seconds` after the same request's previous one.
  void record_next_token(double seconds);
  // The request left the engine `seconds` after it was submitted.
  void record_end(RequestEnd end, double seconds);
  void record_step(const StepTimes& step);

  // Every series in Prometheus' text exposition format, version 0.0.4 (kPrometheusContentType).
  std::string render() const;

 private:
  mutable std::mutex mutex_;
  EngineLoad load_;
  uint64_t prompt_tokens_ = 0, generation_tokens_ = 0;
  std::array<uint64_t, 4> ends_{};  // by RequestEnd
  double step_host_seconds_ = 0;
  Histogram time_to_first_token_, inter_token_latency_, e2e_request_latency_, iteration_tokens_, engine_step_;
};

}  // namespace shardlm::serve
