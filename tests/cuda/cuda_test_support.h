// Shared by the GPU tests: skip visibly when there is no CUDA device, so CI (which has none)
// reports the skip instead of passing silently.
#pragma once

#include <cuda_runtime.h>
#include <gtest/gtest.h>

namespace shardlm {

inline bool cuda_device_present() {
  int count = 0;
  return cudaGetDeviceCount(&count) == cudaSuccess && count > 0;
}

}  // namespace shardlm

#define SKIP_WITHOUT_CUDA_DEVICE()                                           \
  do {                                                                       \
    if (!::shardlm::cuda_device_present()) GTEST_SKIP() << "skipped: no CUDA device"; \
  } while (0)
