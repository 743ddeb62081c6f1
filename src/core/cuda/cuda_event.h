// RAII ownership of a CUDA event, so that a throw between its creation and its last use (a failed
// check, a refused operand) does not leak it.
#pragma once

#include <utility>

#include "core/cuda/cuda_check.h"

namespace shardlm::cuda {

class CudaEvent {
 public:
  explicit CudaEvent(unsigned flags = cudaEventDefault) { CUDA_CHECK(cudaEventCreateWithFlags(&event_, flags)); }
  CudaEvent(CudaEvent&& other) noexcept : event_(std::exchange(other.event_, nullptr)) {}
  CudaEvent& operator=(CudaEvent&& other) noexcept {
    std::swap(event_, other.event_);
    return *this;
  }
  CudaEvent(const CudaEvent&) = delete;
  CudaEvent& operator=(const CudaEvent&) = delete;
  ~CudaEvent() {
    if (event_) cudaEventDestroy(event_);
  }

  cudaEvent_t get() const { return event_; }

 private:
  cudaEvent_t event_ = nullptr;
};

}  // namespace shardlm::cuda
