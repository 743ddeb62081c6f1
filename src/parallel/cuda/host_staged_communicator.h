// A DeviceCommunicator that moves data through pinned host memory and runs the collective on a host
// Communicator (threads or TCP). It synchronises the stream at every call, so it is slow and cannot
// be captured; it exists so that tensor-parallel GPU code runs where NCCL cannot (several ranks on
// one GPU) and is tested against the same host collectives as the CPU ranks.
#pragma once

#include "core/cuda/device_buffer.h"
#include "core/cuda/device_communicator.h"
#include "core/communicator.h"

namespace shardlm::cuda {

class HostStagedCommunicator final : public DeviceCommunicator {
 public:
  explicit HostStagedCommunicator(Communicator& host) : host_(host) {}
  int rank() const override { return host_.rank(); }
  int size() const override { return host_.size(); }
  bool capturable() const override { return false; }
  void all_reduce_sum(void* data, size_t count, DType dtype, cudaStream_t stream) override;
  void all_gather(const void* send, void* recv, size_t count, DType dtype, cudaStream_t stream) override;

 private:
  void* staging(size_t bytes);

  Communicator& host_;
  PinnedBuffer staging_;
};

}  // namespace shardlm::cuda
