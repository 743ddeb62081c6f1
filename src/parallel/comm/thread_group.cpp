// Thread-group collectives. Every collective starts with a barrier at which each rank posts its
// call (operation, count, dtype, root, buffer); the last rank to arrive checks that all calls
// agree, so mismatched collectives fail there instead of deadlocking in later phases. Between that
// barrier and the collective's last one, ranks read each other's posted buffers directly.
//
// All-reduce is reduce-scatter + all-gather through per-rank scratch: rank r sums chunk r of every
// rank's buffer in rank order into its own scratch, then every rank copies all chunks. So each
// element is summed once, by one thread, in the same order, and every rank receives the same bytes.
#include "parallel/comm/thread_group.h"

#include <condition_variable>
#include <cstring>
#include <mutex>
#include <thread>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "core/error.h"
#include "parallel/comm/host_reduce.h"

namespace shardlm {
namespace {

struct CallInfo {
  std::string_view op;  // string literals
  size_t count = 0;
  DType dtype = DType::F32;
  int root = -1;
  const void* buffer = nullptr;
};

std::string describe_call(const CallInfo& call) {
  if (call.op == "barrier") return "barrier()";
  if (call.root >= 0) return fmt::format("{}({} x {}, root {})", call.op, call.count, dtype_name(call.dtype), call.root);
  return fmt::format("{}({} x {})", call.op, call.count, dtype_name(call.dtype));
}

bool same_call(const CallInfo& a, const CallInfo& b) {
  return a.op == b.op && a.count == b.count && a.dtype == b.dtype && a.root == b.root;
}

std::string format_duration(std::chrono::milliseconds duration) {
  if (duration.count() < 1000) return fmt::format("{} ms", duration.count());
  return fmt::format("{:.1f} s", double(duration.count()) / 1000.0);
}

}  // namespace

struct ThreadGroup::State {
  State(int size, CommOptions options)
      : size(size), options(options), arrived_in(size_t(size), 0), departed(size_t(size), false), calls(size_t(size)),
        scratch(size_t(size)) {}

  void abort(const std::string& reason) {
    std::lock_guard lock(mutex);
    abort_locked(reason);
  }

  void abort_locked(const std::string& reason) {
    if (!aborted) {
      aborted = true;
      abort_reason = "thread group aborted: " + reason;
    }
    cv.notify_all();
  }

  void leave(int rank) {
    std::lock_guard lock(mutex);
    departed[size_t(rank)] = true;
    cv.notify_all();
  }

  // Blocks until all ranks have arrived at this barrier. `call` is given at the first barrier of
  // a collective (and checked against the other ranks'); `op` names later phases in messages.
  void arrive(int rank, const CallInfo& call, bool first_barrier) {
    std::unique_lock lock(mutex);
    if (aborted) throw Error(abort_reason);
    const uint64_t generation_now = generation;
    arrived_in[size_t(rank)] = generation_now + 1;
    if (first_barrier) calls[size_t(rank)] = call;
    if (++arrived == size) {
      arrived = 0;
      if (first_barrier) check_calls_locked();
      ++generation;
      cv.notify_all();
      if (aborted) throw Error(abort_reason);
      return;
    }
    const auto deadline = std::chrono::steady_clock::now() + options.timeout;
    while (generation == generation_now) {
      if (aborted) throw Error(abort_reason);
      for (int other = 0; other < size; ++other) {
        if (departed[size_t(other)] && arrived_in[size_t(other)] != generation_now + 1) {
          abort_locked(fmt::format("rank {} left the group while rank {} waits in {}", other, rank, describe_call(call)));
          throw Error(abort_reason);
        }
      }
      if (cv.wait_until(lock, deadline) == std::cv_status::timeout && generation == generation_now && !aborted) {
        std::vector<int> missing;
        for (int other = 0; other < size; ++other) {
          if (arrived_in[size_t(other)] != generation_now + 1) missing.push_back(other);
        }
        abort_locked(fmt::format("rank {} waited {} in {} for rank(s) {}, which did not arrive", rank,
                                 format_duration(options.timeout), describe_call(call), fmt::join(missing, ", ")));
        throw Error(abort_reason);
      }
    }
    if (aborted) throw Error(abort_reason);
  }

  void check_calls_locked() {
    for (int other = 1; other < size; ++other) {
      if (!same_call(calls[0], calls[size_t(other)])) {
        abort_locked(fmt::format("collective mismatch: rank 0 called {}, rank {} called {}", describe_call(calls[0]), other,
                                 describe_call(calls[size_t(other)])));
        return;
      }
    }
  }

  const int size;
  const CommOptions options;
  std::mutex mutex;
  std::condition_variable cv;
  uint64_t generation = 0;  // completed barriers
  int arrived = 0;          // ranks waiting at the current barrier
  std::vector<uint64_t> arrived_in;  // per rank: 1 + the generation of its latest arrival
  std::vector<bool> departed;
  bool aborted = false;
  std::string abort_reason;
  // Valid from a collective's first barrier to its last; written under the mutex, read without it
  // in between (the barrier orders the accesses).
  std::vector<CallInfo> calls;
  std::vector<std::vector<std::byte>> scratch;  // per rank, written only by its owner
  std::vector<std::unique_ptr<Communicator>> communicators;
};

namespace {

class ThreadCommunicator final : public Communicator {
 public:
  ThreadCommunicator(ThreadGroup::State& state, int rank) : state_(state), rank_(rank) {}

  int rank() const override { return rank_; }
  int size() const override { return state_.size; }
  void abort(const std::string& reason) override { state_.abort(fmt::format("rank {} aborted: {}", rank_, reason)); }

 protected:
  void do_all_reduce_sum(void* data, size_t count, DType dtype) override {
    const CallInfo call{"all_reduce_sum", count, dtype, -1, data};
    state_.arrive(rank_, call, true);
    const size_t element = dtype_size(dtype);
    const auto [begin, end] = chunk_of(rank_, count);
    std::vector<float> sums(end - begin);
    widen_to_f32(dtype, byte_at(state_.calls[0].buffer, begin * element), end - begin, sums.data());
    for (int other = 1; other < state_.size; ++other) {
      accumulate_f32(dtype, byte_at(state_.calls[size_t(other)].buffer, begin * element), end - begin, sums.data());
    }
    std::vector<std::byte>& mine = state_.scratch[size_t(rank_)];
    mine.resize((end - begin) * element);
    narrow_from_f32(dtype, sums.data(), end - begin, mine.data());
    state_.arrive(rank_, call, false);
    for (int owner = 0; owner < state_.size; ++owner) {
      const auto [owner_begin, owner_end] = chunk_of(owner, count);
      if (owner_end > owner_begin) {
        std::memcpy(static_cast<std::byte*>(data) + owner_begin * element, state_.scratch[size_t(owner)].data(),
                    (owner_end - owner_begin) * element);
      }
    }
    state_.arrive(rank_, call, false);
  }

  void do_all_gather(const void* send, void* recv, size_t count, DType dtype) override {
    const CallInfo call{"all_gather", count, dtype, -1, send};
    state_.arrive(rank_, call, true);
    const size_t bytes = count * dtype_size(dtype);
    for (int other = 0; other < state_.size && bytes > 0; ++other) {
      std::byte* destination = static_cast<std::byte*>(recv) + size_t(other) * bytes;
      // In-place gathers pass send == their own block of recv.
      if (destination != state_.calls[size_t(other)].buffer) std::memcpy(destination, state_.calls[size_t(other)].buffer, bytes);
    }
    state_.arrive(rank_, call, false);
  }

  void do_reduce_scatter_sum(const void* send, void* recv, size_t count, DType dtype) override {
    const CallInfo call{"reduce_scatter_sum", count, dtype, -1, send};
    state_.arrive(rank_, call, true);
    const size_t offset = size_t(rank_) * count * dtype_size(dtype);
    std::vector<float> sums(count);
    widen_to_f32(dtype, byte_at(state_.calls[0].buffer, offset), count, sums.data());
    for (int other = 1; other < state_.size; ++other) {
      accumulate_f32(dtype, byte_at(state_.calls[size_t(other)].buffer, offset), count, sums.data());
    }
    narrow_from_f32(dtype, sums.data(), count, recv);
    state_.arrive(rank_, call, false);
  }

  void do_broadcast(void* data, size_t count, DType dtype, int root) override {
    const CallInfo call{"broadcast", count, dtype, root, data};
    state_.arrive(rank_, call, true);
    if (rank_ != root && count > 0) std::memcpy(data, state_.calls[size_t(root)].buffer, count * dtype_size(dtype));
    state_.arrive(rank_, call, false);
  }

  void do_barrier() override { state_.arrive(rank_, CallInfo{"barrier"}, true); }

 private:
  static const std::byte* byte_at(const void* buffer, size_t offset) { return static_cast<const std::byte*>(buffer) + offset; }

  // The elements rank `owner` reduces for everyone.
  std::pair<size_t, size_t> chunk_of(int owner, size_t count) const {
    const size_t n = size_t(state_.size);
    return {count * size_t(owner) / n, count * size_t(owner + 1) / n};
  }

  ThreadGroup::State& state_;
  const int rank_;
};

}  // namespace

ThreadGroup::ThreadGroup(std::unique_ptr<State> state) : state_(std::move(state)) {}
ThreadGroup::~ThreadGroup() = default;

std::shared_ptr<ThreadGroup> ThreadGroup::create(int size, CommOptions options) {
  if (size < 1) fail("thread group: size {} must be at least 1", size);
  auto state = std::make_unique<State>(size, options);
  for (int rank = 0; rank < size; ++rank) state->communicators.push_back(std::make_unique<ThreadCommunicator>(*state, rank));
  return std::shared_ptr<ThreadGroup>(new ThreadGroup(std::move(state)));
}

int ThreadGroup::size() const { return state_->size; }

Communicator& ThreadGroup::communicator(int rank) {
  if (rank < 0 || rank >= state_->size) fail("thread group: rank {} outside a group of {}", rank, state_->size);
  return *state_->communicators[size_t(rank)];
}

void ThreadGroup::abort(const std::string& reason) { state_->abort(reason); }

void ThreadGroup::leave(int rank) {
  if (rank < 0 || rank >= state_->size) fail("thread group: rank {} outside a group of {}", rank, state_->size);
  state_->leave(rank);
}

void ThreadGroup::run(int size, const std::function<void(Communicator&)>& body, CommOptions options) {
  const std::shared_ptr<ThreadGroup> group = create(size, options);
  bool failed = false;
  std::mutex failed_mutex;
  const auto run_rank = [&](int rank) {
    try {
      body(group->communicator(rank));
      group->leave(rank);
      return;
    } catch (const std::exception& error) {
      group->abort(fmt::format("rank {} failed: {}", rank, error.what()));
    } catch (...) {
      group->abort(fmt::format("rank {} failed with a non-standard exception", rank));
    }
    std::lock_guard lock(failed_mutex);
    failed = true;
  };

  std::vector<std::thread> threads;
  try {
    for (int rank = 0; rank < size; ++rank) threads.emplace_back(run_rank, rank);
  } catch (const std::system_error& error) {
    group->abort(fmt::format("could not start a thread per rank: {}", error.what()));
    for (std::thread& thread : threads) thread.join();
    throw Error(group->state_->abort_reason);
  }
  for (std::thread& thread : threads) thread.join();
  if (failed) throw Error(group->state_->abort_reason);
}

}  // namespace shardlm
