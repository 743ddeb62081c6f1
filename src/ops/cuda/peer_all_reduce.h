// One-shot all-reduce kernel for small messages between GPU ranks that are threads of one process
// (the protocol is described in backend/cuda/peer_communicator.h).
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

namespace shardlm::cuda {

constexpr int kPeerMaxRanks = 8;

struct PeerTable {
  void* slots[kPeerMaxRanks] = {};      // each rank's two slots of max_bytes
  uint32_t* flags[kPeerMaxRanks] = {};  // each rank's flags: one per source rank
};

// data (count elements, bf16 or f32) is summed in place over the ranks of `table`, in rank order.
// epoch: this rank's call counter in device memory (zero before the first call).
void launch_peer_all_reduce(void* data, size_t count, bool bf16, const PeerTable& table, int rank, int size,
                            size_t max_bytes, uint32_t* epoch, cudaStream_t stream);

}  // namespace shardlm::cuda
