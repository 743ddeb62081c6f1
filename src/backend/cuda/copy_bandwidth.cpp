// Large copies (well past the L2), timed with events after a warm-up copy; best of several.
#include "backend/cuda/copy_bandwidth.h"

#include <algorithm>

#include "core/cuda/cuda_event.h"
#include "core/cuda/device_buffer.h"

namespace shardlm::cuda {

namespace {

// Best GB/s of `bytes` copied from source to destination, counting each byte `bytes_per_byte` times.
double best_copy_rate(void* destination, const void* source, size_t bytes, cudaMemcpyKind kind, double bytes_per_byte) {
  const CudaEvent start, stop;
  double best = 0;
  for (int pass = 0; pass < 6; ++pass) {
    CUDA_CHECK(cudaEventRecord(start.get()));
    CUDA_CHECK(cudaMemcpy(destination, source, bytes, kind));
    CUDA_CHECK(cudaEventRecord(stop.get()));
    CUDA_CHECK(cudaEventSynchronize(stop.get()));
    float milliseconds = 0;
    CUDA_CHECK(cudaEventElapsedTime(&milliseconds, start.get(), stop.get()));
    if (pass > 0) best = std::max(best, bytes_per_byte * double(bytes) / (double(milliseconds) * 1e6));
  }
  return best;
}

}  // namespace

double measure_copy_bandwidth(int device) {
  CUDA_CHECK(cudaSetDevice(device));
  const size_t bytes = size_t(2) << 30;
  DeviceBuffer source(bytes), destination(bytes);
  CUDA_CHECK(cudaMemset(source.get(), 1, bytes));
  return best_copy_rate(destination.get(), source.get(), bytes, cudaMemcpyDeviceToDevice, 2.0);
}

double measure_host_to_device_bandwidth(int device) {
  CUDA_CHECK(cudaSetDevice(device));
  const size_t bytes = size_t(1) << 30;
  PinnedBuffer source(bytes);
  DeviceBuffer destination(bytes);
  return best_copy_rate(destination.get(), source.get(), bytes, cudaMemcpyHostToDevice, 1.0);
}

}  // namespace shardlm::cuda
