// 2 GiB copied device to device (well past the L2), timed with events after a warm-up copy.
#include "backend/cuda/copy_bandwidth.h"

#include <algorithm>

#include "backend/cuda/device_buffer.h"

namespace shardlm::cuda {

double measure_copy_bandwidth(int device) {
  CUDA_CHECK(cudaSetDevice(device));
  const size_t bytes = size_t(2) << 30;
  DeviceBuffer source(bytes), destination(bytes);
  CUDA_CHECK(cudaMemset(source.get(), 1, bytes));
  cudaEvent_t start, stop;
  CUDA_CHECK(cudaEventCreate(&start));
  CUDA_CHECK(cudaEventCreate(&stop));
  double best = 0;
  for (int pass = 0; pass < 6; ++pass) {
    CUDA_CHECK(cudaEventRecord(start));
    CUDA_CHECK(cudaMemcpy(destination.get(), source.get(), bytes, cudaMemcpyDeviceToDevice));
    CUDA_CHECK(cudaEventRecord(stop));
    CUDA_CHECK(cudaEventSynchronize(stop));
    float milliseconds = 0;
    CUDA_CHECK(cudaEventElapsedTime(&milliseconds, start, stop));
    if (pass > 0) best = std::max(best, 2.0 * double(bytes) / (double(milliseconds) * 1e6));
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  return best;
}

}  // namespace shardlm::cuda
