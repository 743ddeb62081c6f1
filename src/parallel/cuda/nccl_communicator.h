// Tensor-parallel collectives over NCCL, one communicator per rank (one GPU each). The ranks meet
// through a host Communicator: rank 0 makes the ncclUniqueId and broadcasts it, so the same code
// serves threads in one process (generate --tp N) and processes started by a launcher.
// NVLink SHARP (multicast) stays off: NCCL_NVLS_ENABLE=0 is set unless the user set it.
#pragma once

#include <nccl.h>

#include <atomic>

#include "core/cuda/device_communicator.h"
#include "core/communicator.h"

namespace shardlm::cuda {

class NcclCommunicator final : public DeviceCommunicator {
 public:
  // Collective over the host group: every rank must construct one, on its own device.
  NcclCommunicator(Communicator& host, int device);
  ~NcclCommunicator() override;
  NcclCommunicator(const NcclCommunicator&) = delete;
  NcclCommunicator& operator=(const NcclCommunicator&) = delete;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  bool capturable() const override { return true; }
  void all_reduce_sum(void* data, size_t count, DType dtype, cudaStream_t stream) override;
  void all_gather(const void* send, void* recv, size_t count, DType dtype, cudaStream_t stream) override;
  // Ends this rank's outstanding and future collectives (ncclCommAbort), so that a rank waiting on
  // a peer that failed returns instead of hanging. Safe from another thread.
  void abort();

 private:
  ncclComm_t live() const;

  std::atomic<ncclComm_t> comm_{nullptr};
  int rank_ = 0, size_ = 1;
};

}  // namespace shardlm::cuda
