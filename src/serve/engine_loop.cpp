#include "serve/engine_loop.h"

#include <exception>

namespace shardlm::serve {
namespace {

// A scheduler refusal as the client sees it: a 400 naming the field its message starts with.
ApiError refusal(const std::exception& error) {
  const std::string message = error.what();
  for (const char* field : {"prompt", "max_tokens", "temperature", "top_p", "top_k", "logit_bias"})
    if (message.rfind(field, 0) == 0) return ApiError(400, message, field);
  return ApiError(400, message);
}

double seconds(std::chrono::steady_clock::duration duration) { return std::chrono::duration<double>(duration).count(); }

}  // namespace

EngineLoop::EngineLoop(Scheduler& scheduler) : scheduler_(scheduler), thread_([this] { run(); }) {}

EngineLoop::~EngineLoop() {
  stop("the server is shutting down");
  thread_.join();
}

void EngineLoop::check(const SchedulerRequest& request) const {
  try {
    scheduler_.check(request);
  } catch (const std::exception& error) {
    throw refusal(error);
  }
}

std::shared_ptr<RequestTicket> EngineLoop::submit(SchedulerRequest request, RequestSink sink) {
  auto ticket = std::make_shared<RequestTicket>();
  {
    const std::lock_guard lock(mutex_);
    if (stopping_) {
      sink.on_error(503, stop_reason_, "");
      return ticket;
    }
    inbox_.push_back({std::move(request), std::move(sink), ticket, Clock::now()});
    ++waiting_;
  }
  wake_.notify_one();
  return ticket;
}

void EngineLoop::stop(const std::string& reason) {
  {
    const std::lock_guard lock(mutex_);
    if (stopping_) return;
    stopping_ = true;
    stop_reason_ = reason;
  }
  wake_.notify_one();
}

void EngineLoop::fail_all(int status, const std::string& message) {
  const Clock::time_point now = Clock::now();
  for (auto& [id, live] : live_) {
    scheduler_.cancel(id);
    metrics_.record_end(RequestEnd::error, seconds(now - live.submitted));
    live.sink.on_error(status, message, "");
  }
  live_.clear();
}

void EngineLoop::run() {
  for (;;) {
    std::vector<Pending> arrived;
    {
      std::unique_lock lock(mutex_);
      // Idle, the loop still tells the engine's other ranks that it is alive. Should that fail,
      // the group is gone, and the next request's step fails with the reason.
      while (!wake_.wait_for(lock, scheduler_.idle_interval(),
                             [&] { return stopping_ || !inbox_.empty() || scheduler_.has_work(); })) {
        lock.unlock();
        try {
          scheduler_.idle();
        } catch (const std::exception&) {
        }
        lock.lock();
      }
      arrived.swap(inbox_);
      if (stopping_) {
        for (Pending& pending : arrived) pending.sink.on_error(503, stop_reason_, "");
        lock.unlock();
        fail_all(503, stop_reason_);
        running_ = waiting_ = 0;
        return;
      }
    }
    for (Pending& pending : arrived) {
      try {
        const uint64_t id = scheduler_.submit(std::move(pending.request));
        live_.emplace(id, Live{std::move(pending.sink), std::move(pending.ticket), pending.submitted, std::nullopt});
      } catch (const std::exception& error) {
        const ApiError refused = refusal(error);
        pending.sink.on_error(refused.status(), refused.what(), refused.param());
      }
    }
    for (auto it = live_.begin(); it != live_.end();) {
      if (!it->second.ticket->cancelled()) {
        ++it;
        continue;
      }
      scheduler_.cancel(it->first);
      metrics_.record_end(RequestEnd::cancelled, seconds(Clock::now() - it->second.submitted));
      it = live_.erase(it);
    }
    std::vector<RequestUpdate> updates;
    const Clock::time_point step_start = Clock::now();
    try {
      updates = scheduler_.step();
    } catch (const std::exception& error) {
      fail_all(500, std::string("the engine failed: ") + error.what());
    }
    const Clock::time_point stepped = Clock::now();
    for (const RequestUpdate& update : updates) {
      const auto found = live_.find(update.id);
      if (found == live_.end()) continue;
      record_token(found->second, update, stepped);
      found->second.sink.on_update(update);
      if (update.finished) live_.erase(found);
    }
    if (const StepReport& step = scheduler_.last_step(); step.tokens > 0)
      metrics_.record_step({step.tokens, step.engine_seconds, seconds(Clock::now() - step_start) - step.engine_seconds});
    running_ = int(scheduler_.running());
    waiting_ = int(scheduler_.waiting());
    const KvBlockPool& blocks = scheduler_.kv_blocks();
    metrics_.record_load({running_, waiting_, scheduler_.kv_cache_usage(), blocks.used_blocks(),
                          blocks.queried_tokens(), blocks.hit_tokens(), scheduler_.preemptions()});
  }
}

// Every token of a step appeared when the step returned, so they all share its end as their time.
void EngineLoop::record_token(Live& live, const RequestUpdate& update, Clock::time_point now) {
  if (live.last_token) {
    metrics_.record_next_token(seconds(now - *live.last_token));
  } else {
    metrics_.record_first_token(update.prompt_tokens, seconds(now - live.submitted));
  }
  live.last_token = now;
  if (update.finished)
    metrics_.record_end(update.finish_reason == "stop" ? RequestEnd::stop : RequestEnd::length,
                        seconds(now - live.submitted));
}

}  // namespace shardlm::serve
