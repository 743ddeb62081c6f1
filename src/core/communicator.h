// The collective-communication interface of host ranks: threads of one process and processes over
// TCP (thread_group.h, tcp_communicator.h). One Communicator object is one rank's handle on its
// group. GPU ranks use backend/cuda/device_communicator.h, whose collectives take a stream; they
// meet through a host Communicator first (NCCL's unique id travels over it).
//
// Buffers are raw host pointers plus a DType; each call completes before returning.
//
// Guarantees every backend keeps: all ranks end an all-reduce or reduce-scatter with bit-identical
// values (the host backends sum in rank order 0, 1, ..., n-1, accumulating in f32); every rank must
// issue the same collectives in the same order, and a mismatch is an Error rather than a hang; a
// rank that fails, exits or stops responding makes every other rank's pending or next collective
// throw Error within the timeout, and abort() does so at once.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>

#include "core/dtype.h"

namespace shardlm {

struct CommOptions {
  // How long a rank waits without progress (a peer arriving, or bytes moving) before it declares
  // the group dead. Long enough for the slowest step between collectives (a prefill on CPU).
  std::chrono::milliseconds timeout{30'000};
};

class Communicator {
 public:
  virtual ~Communicator() = default;

  virtual int rank() const = 0;
  virtual int size() const = 0;

  // In place: data[i] becomes the sum over ranks of data[i].
  void all_reduce_sum(void* data, size_t count, DType dtype);
  // recv holds size() * count elements: rank r's `send` lands at recv + r * count.
  void all_gather(const void* send, void* recv, size_t count, DType dtype);
  // send holds size() * count elements; recv gets the sum over ranks of block rank() of send.
  void reduce_scatter_sum(const void* send, void* recv, size_t count, DType dtype);
  // Every rank's data becomes root's.
  void broadcast(void* data, size_t count, DType dtype, int root);
  void barrier();

  // Makes this rank's pending and future collectives, and those of every rank waiting on it, throw
  // Error naming `reason`. Safe to call from any thread; the other calls belong to the rank's own.
  virtual void abort(const std::string& reason) = 0;

  void all_reduce_sum(float* data, size_t count) { all_reduce_sum(data, count, DType::F32); }
  void all_gather(const float* send, float* recv, size_t count) { all_gather(send, recv, count, DType::F32); }
  void reduce_scatter_sum(const float* send, float* recv, size_t count) { reduce_scatter_sum(send, recv, count, DType::F32); }
  void broadcast(float* data, size_t count, int root) { broadcast(data, count, DType::F32, root); }

 protected:
  virtual void do_all_reduce_sum(void* data, size_t count, DType dtype) = 0;
  virtual void do_all_gather(const void* send, void* recv, size_t count, DType dtype) = 0;
  virtual void do_reduce_scatter_sum(const void* send, void* recv, size_t count, DType dtype) = 0;
  virtual void do_broadcast(void* data, size_t count, DType dtype, int root) = 0;
  virtual void do_barrier() = 0;
};

}  // namespace shardlm
