// Host collectives between threads of one process: `shardlm generate --tp N` runs one thread per
// rank (per GPU, or per CPU rank in tests) without any launcher. Ranks exchange pointers to their
// own buffers through shared state and synchronise on a reusable barrier; data moves by memcpy.
// The barrier never waits forever: it fails on timeout, on abort(), and as soon as a rank it waits
// for has left the group, so one failing thread brings the others down instead of hanging them.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/communicator.h"

namespace shardlm {

class ThreadGroup {
 public:
  static std::shared_ptr<ThreadGroup> create(int size, CommOptions options = {});
  ~ThreadGroup();

  int size() const;
  // Rank `rank`'s communicator, owned by the group; hand each to its own thread.
  Communicator& communicator(int rank);

  // Wakes every rank waiting in a collective, and fails every later one, with Error(reason).
  void abort(const std::string& reason);
  // Declares that `rank` will issue no more collectives: ranks waiting for it fail at once.
  void leave(int rank);

  // Runs body(communicator) for every rank on its own thread and joins them. If any rank throws,
  // the group is aborted (so the others stop at their next collective) and, once all threads have
  // returned, run throws Error naming the first failing rank and its message. A rank that returns
  // normally leaves the group.
  static void run(int size, const std::function<void(Communicator&)>& body, CommOptions options = {});

  struct State;  // shared with the communicators; defined in thread_group.cpp

 private:
  explicit ThreadGroup(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

}  // namespace shardlm
