// A DeviceCommunicator with a one-shot all-reduce for the small messages of decode (a layer's
// 8 KB of bf16 at batch 1), between GPU ranks that are threads of one process: each rank copies its input into its own slot, raises a
// flag in every rank's memory, waits until every rank's flag is up, then reads all slots (peer
// memory: NVLink between GPUs, plain loads when ranks share one) and sums them in rank order, so all
// ranks get bit-identical results. One kernel, no host work: CUDA graphs capture it. Larger messages
// and every other collective go to the fallback (NCCL). NVLink multicast is not used.
//
// Slots alternate by call parity, so a rank that races ahead into call e+2 cannot overwrite a slot
// a slower rank still reads in call e: it must first see that rank's flag for call e+1.
#pragma once

#include <cstddef>

#include "core/cuda/device_buffer.h"
#include "core/cuda/device_communicator.h"
#include "ops/cuda/peer_all_reduce.h"
#include "core/communicator.h"

namespace shardlm::cuda {

class PeerCommunicator final : public DeviceCommunicator {
 public:
  // Collective over the host group (threads of this process): allocates this rank's slots and
  // flags on `device`, enables peer access to the others' devices, and exchanges the pointers.
  PeerCommunicator(Communicator& host, int device, DeviceCommunicator& fallback, size_t max_bytes = 64 << 10);
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  bool capturable() const override { return fallback_.capturable(); }
  void all_reduce_sum(void* data, size_t count, DType dtype, cudaStream_t stream) override;
  void all_gather(const void* send, void* recv, size_t count, DType dtype, cudaStream_t stream) override {
    fallback_.all_gather(send, recv, count, dtype, stream);
  }

 private:
  int rank_, size_;
  size_t max_bytes_;
  DeviceCommunicator& fallback_;
  DeviceBuffer slots_, flags_, epoch_;
  PeerTable table_;
};

}  // namespace shardlm::cuda
