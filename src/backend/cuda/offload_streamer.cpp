// Event protocol: copied_[s] is recorded on the copy stream after slot s is filled, and the compute
// stream waits on it before reading; computed_[s] is recorded on the compute stream after the last
// reader, and the copy stream waits on it before refilling. Block k+2's copy is enqueued when block
// k is released, so a disk read happens on the host while the GPU computes block k+1.
#include "backend/cuda/offload_streamer.h"

#include <algorithm>

#include "core/error.h"

namespace shardlm::cuda {

OffloadStreamer::OffloadStreamer(int device, size_t slot_elements) : device_(device), slot_elements_(slot_elements) {
  CUDA_CHECK(cudaSetDevice(device));
  CUDA_CHECK(cudaStreamCreateWithFlags(&copy_stream_, cudaStreamNonBlocking));
  for (int slot = 0; slot < 2; ++slot) {
    slots_[slot] = DeviceBuffer(slot_elements * sizeof(__nv_bfloat16));
    CUDA_CHECK(cudaEventCreateWithFlags(&copied_[slot], cudaEventDisableTiming));
    CUDA_CHECK(cudaEventCreateWithFlags(&computed_[slot], cudaEventDisableTiming));
  }
}

OffloadStreamer::~OffloadStreamer() {
  cudaSetDevice(device_);
  if (copy_stream_) cudaStreamSynchronize(copy_stream_);
  for (int slot = 0; slot < 2; ++slot) {
    if (copied_[slot]) cudaEventDestroy(copied_[slot]);
    if (computed_[slot]) cudaEventDestroy(computed_[slot]);
  }
  if (copy_stream_) cudaStreamDestroy(copy_stream_);
}

void OffloadStreamer::begin(std::vector<const OffloadBlock*> blocks) {
  if (next_ < blocks_.size()) fail("offload streamer: a pass began before the previous one acquired every block");
  blocks_ = std::move(blocks);
  next_ = 0;
  for (size_t index = 0; index < std::min<size_t>(2, blocks_.size()); ++index) enqueue_copy(index);
}

void OffloadStreamer::enqueue_copy(size_t index) {
  const OffloadBlock& block = *blocks_[index];
  if (block.elements > slot_elements_)
    fail("offload streamer: a block of {} elements does not fit the {}-element slots", block.elements, slot_elements_);
  const int slot = int(index % 2);
  const size_t bytes = block.elements * sizeof(__nv_bfloat16);
  CUDA_CHECK(cudaSetDevice(device_));
  CUDA_CHECK(cudaStreamWaitEvent(copy_stream_, computed_[slot]));
  const void* source = block.pinned;
  if (!source) {
    if (!staging_[slot].get()) staging_[slot] = PinnedBuffer(slot_elements_ * sizeof(__nv_bfloat16));
    CUDA_CHECK(cudaEventSynchronize(copied_[slot]));  // the staging buffer's previous copy is done
    block.read_into(staging_[slot].get<__nv_bfloat16>());
    source = staging_[slot].get();
  }
  CUDA_CHECK(cudaMemcpyAsync(slots_[slot].get(), source, bytes, cudaMemcpyHostToDevice, copy_stream_));
  CUDA_CHECK(cudaEventRecord(copied_[slot], copy_stream_));
  bytes_streamed_ += bytes;
}

__nv_bfloat16* OffloadStreamer::acquire(cudaStream_t compute) {
  if (next_ >= blocks_.size()) fail("offload streamer: more blocks acquired than the pass has");
  const int slot = int(next_ % 2);
  CUDA_CHECK(cudaStreamWaitEvent(compute, copied_[slot]));
  return slots_[slot].get<__nv_bfloat16>();
}

void OffloadStreamer::release(cudaStream_t compute) {
  const int slot = int(next_ % 2);
  CUDA_CHECK(cudaEventRecord(computed_[slot], compute));
  ++next_;
  if (next_ + 1 < blocks_.size()) enqueue_copy(next_ + 1);
}

}  // namespace shardlm::cuda
