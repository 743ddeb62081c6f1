// Streams offloaded weight blocks into one GPU just in time: two device slots, both filled as a
// pass begins (so a pass of two blocks is copied while the host does other work), then block k+2's
// copy (on a copy stream) is queued behind the compute on block k, which read its slot. A block
// comes from pinned host memory (a device map's "cpu", copied there at load) or is read from the
// mapped checkpoint into pinned staging as it is needed ("disk").
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <functional>
#include <vector>

#include "core/cuda/device_buffer.h"

namespace shardlm::cuda {

struct OffloadBlock {
  const __nv_bfloat16* pinned = nullptr;              // cpu: the block, laid out as on the device
  std::function<void(__nv_bfloat16*)> read_into;      // disk: writes the block into pinned staging
  size_t elements = 0;
};

class OffloadStreamer {
 public:
  // On `device`, with slots of slot_elements bf16 each (the largest block).
  OffloadStreamer(int device, size_t slot_elements);
  ~OffloadStreamer();
  OffloadStreamer(const OffloadStreamer&) = delete;
  OffloadStreamer& operator=(const OffloadStreamer&) = delete;

  // Starts a pass over these blocks, in the order they will be acquired; begins the first two copies.
  void begin(std::vector<const OffloadBlock*> blocks);
  // The device copy of the pass's next block; work enqueued on `compute` afterwards sees it whole.
  __nv_bfloat16* acquire(cudaStream_t compute);
  // Everything that reads the acquired block is on `compute`; queues the copy of the block two
  // places on into its slot.
  void release(cudaStream_t compute);
  size_t bytes_streamed() const { return bytes_streamed_; }

 private:
  void enqueue_copy(size_t index);

  int device_;
  size_t slot_elements_;
  cudaStream_t copy_stream_ = nullptr;
  DeviceBuffer slots_[2];
  PinnedBuffer staging_[2];  // for blocks read from disk; made on first use
  cudaEvent_t copied_[2] = {}, computed_[2] = {};
  std::vector<const OffloadBlock*> blocks_;
  size_t next_ = 0;
  size_t bytes_streamed_ = 0;
};

}  // namespace shardlm::cuda
