// The server's engine thread. It owns the Scheduler and runs steps while there is work; requests
// arrive from the connections' thread through a locked inbox, and each request's updates go to its
// sink, called on the engine thread (a sink hands them to its connection and returns at once, so a
// slow client never holds a step up). A cancelled ticket leaves the engine at the next step. The
// loop records the server's metrics where the tokens appear: after each step, on this thread.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "runtime/scheduler.h"
#include "serve/api_error.h"
#include "serve/metrics.h"

namespace shardlm::serve {

struct RequestSink {
  std::function<void(const RequestUpdate&)> on_update;
  // The request was refused (400: the message names the field) or the engine failed (500), or the
  // server is stopping (503).
  std::function<void(int status, const std::string& message, const std::string& param)> on_error;
};

class RequestTicket {
 public:
  void cancel() { cancelled_ = true; }
  bool cancelled() const { return cancelled_; }

 private:
  std::atomic<bool> cancelled_ = false;
};

class EngineLoop {
 public:
  explicit EngineLoop(Scheduler& scheduler);
  ~EngineLoop();  // stops (as stop()) and joins the thread
  EngineLoop(const EngineLoop&) = delete;
  EngineLoop& operator=(const EngineLoop&) = delete;

  // Throws ApiError (400, naming the field) for a request the scheduler would refuse; any thread.
  void check(const SchedulerRequest& request) const;
  std::shared_ptr<RequestTicket> submit(SchedulerRequest request, RequestSink sink);
  // No new requests; every request still queued or running gets on_error(503, reason).
  void stop(const std::string& reason);
  int running() const { return running_; }
  int waiting() const { return waiting_; }
  const ServerMetrics& metrics() const { return metrics_; }

 private:
  using Clock = std::chrono::steady_clock;
  struct Pending {
    SchedulerRequest request;
    RequestSink sink;
    std::shared_ptr<RequestTicket> ticket;
    Clock::time_point submitted;
  };
  struct Live {
    RequestSink sink;
    std::shared_ptr<RequestTicket> ticket;
    Clock::time_point submitted;
    std::optional<Clock::time_point> last_token;  // when its previous token appeared; none before the first
  };
  void run();
  void fail_all(int status, const std::string& message);
  void record_token(Live& live, const RequestUpdate& update, Clock::time_point now);

  Scheduler& scheduler_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::vector<Pending> inbox_;
  bool stopping_ = false;
  std::string stop_reason_;
  std::map<uint64_t, Live> live_;  // engine thread only
  std::atomic<int> running_ = 0, waiting_ = 0;
  ServerMetrics metrics_;
  std::thread thread_;
};

}  // namespace shardlm::serve
