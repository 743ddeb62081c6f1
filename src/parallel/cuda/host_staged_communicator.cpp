#include "parallel/cuda/host_staged_communicator.h"

namespace shardlm::cuda {

void* HostStagedCommunicator::staging(size_t bytes) {
  if (staging_.bytes() < bytes) staging_ = PinnedBuffer(bytes);
  return staging_.get();
}

void HostStagedCommunicator::all_reduce_sum(void* data, size_t count, DType dtype, cudaStream_t stream) {
  const size_t bytes = count * dtype_size(dtype);
  void* host = staging(bytes);
  CUDA_CHECK(cudaMemcpyAsync(host, data, bytes, cudaMemcpyDeviceToHost, stream));
  CUDA_CHECK(cudaStreamSynchronize(stream));
  host_.all_reduce_sum(host, count, dtype);
  CUDA_CHECK(cudaMemcpyAsync(data, host, bytes, cudaMemcpyHostToDevice, stream));
  CUDA_CHECK(cudaStreamSynchronize(stream));
}

void HostStagedCommunicator::all_gather(const void* send, void* recv, size_t count, DType dtype, cudaStream_t stream) {
  const size_t bytes = count * dtype_size(dtype);
  char* host = static_cast<char*>(staging(bytes * size_t(size() + 1)));
  CUDA_CHECK(cudaMemcpyAsync(host, send, bytes, cudaMemcpyDeviceToHost, stream));
  CUDA_CHECK(cudaStreamSynchronize(stream));
  host_.all_gather(host, host + bytes, count, dtype);
  CUDA_CHECK(cudaMemcpyAsync(recv, host + bytes, bytes * size_t(size()), cudaMemcpyHostToDevice, stream));
  CUDA_CHECK(cudaStreamSynchronize(stream));
}

}  // namespace shardlm::cuda
