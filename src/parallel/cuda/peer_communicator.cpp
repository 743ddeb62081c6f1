#include "parallel/cuda/peer_communicator.h"

#include <vector>

#include "backend/cuda/device_query.h"
#include "core/error.h"

namespace shardlm::cuda {

PeerCommunicator::PeerCommunicator(Communicator& host, int device, DeviceCommunicator& fallback, size_t max_bytes)
    : rank_(host.rank()), size_(host.size()), max_bytes_(max_bytes), fallback_(fallback) {
  if (size_ > kPeerMaxRanks) fail("peer all-reduce: {} ranks, at most {}", size_, kPeerMaxRanks);
  CUDA_CHECK(cudaSetDevice(device));
  slots_ = DeviceBuffer(2 * max_bytes);
  flags_ = DeviceBuffer(kPeerMaxRanks * sizeof(uint32_t));
  epoch_ = DeviceBuffer(sizeof(uint32_t));
  CUDA_CHECK(cudaMemset(flags_.get(), 0, flags_.bytes()));
  CUDA_CHECK(cudaMemset(epoch_.get(), 0, epoch_.bytes()));
  // Threads of one process share an address space: the pointers themselves are exchanged, as
  // three 64-bit words (slots, flags, device) carried in f32-sized pieces.
  const uint64_t mine[3] = {reinterpret_cast<uint64_t>(slots_.get()), reinterpret_cast<uint64_t>(flags_.get()),
                            uint64_t(device)};
  std::vector<uint64_t> all(3 * size_t(size_));
  host.all_gather(reinterpret_cast<const float*>(mine), reinterpret_cast<float*>(all.data()), 6);
  for (int r = 0; r < size_; ++r) {
    table_.slots[r] = reinterpret_cast<void*>(all[3 * size_t(r)]);
    table_.flags[r] = reinterpret_cast<uint32_t*>(all[3 * size_t(r) + 1]);
    const int peer = int(all[3 * size_t(r) + 2]);
    if (peer == device) continue;
    if (!can_access_peer(device, peer)) fail("peer all-reduce: cuda:{} cannot access cuda:{} directly", device, peer);
    enable_peer_access(device, peer);
  }
  host.barrier();  // every rank's flags are zeroed before any kernel may raise one
}

void PeerCommunicator::all_reduce_sum(void* data, size_t count, DType dtype, cudaStream_t stream) {
  if (count * dtype_size(dtype) > max_bytes_ || dtype == DType::F16) {
    fallback_.all_reduce_sum(data, count, dtype, stream);
    return;
  }
  launch_peer_all_reduce(data, count, dtype == DType::BF16, table_, rank_, size_, max_bytes_, epoch_.get<uint32_t>(), stream);
}

}  // namespace shardlm::cuda
