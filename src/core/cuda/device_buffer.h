// RAII ownership of device memory (cudaMalloc) and pinned host memory (cudaMallocHost).
#pragma once

#include <cstddef>
#include <utility>

#include "core/cuda/cuda_check.h"

namespace shardlm::cuda {

template <bool kPinnedHost>
class Allocation {
 public:
  Allocation() = default;
  explicit Allocation(size_t bytes) : bytes_(bytes) {
    if (bytes == 0) return;
    if constexpr (kPinnedHost) CUDA_CHECK(cudaMallocHost(&data_, bytes));
    else CUDA_CHECK(cudaMalloc(&data_, bytes));
  }
  Allocation(Allocation&& other) noexcept : data_(std::exchange(other.data_, nullptr)), bytes_(std::exchange(other.bytes_, 0)) {}
  Allocation& operator=(Allocation&& other) noexcept {
    std::swap(data_, other.data_);
    std::swap(bytes_, other.bytes_);
    return *this;
  }
  Allocation(const Allocation&) = delete;
  Allocation& operator=(const Allocation&) = delete;
  ~Allocation() {
    if (!data_) return;
    if constexpr (kPinnedHost) cudaFreeHost(data_);
    else cudaFree(data_);
  }

  template <typename T = void>
  T* get() const { return static_cast<T*>(data_); }
  size_t bytes() const { return bytes_; }

 private:
  void* data_ = nullptr;
  size_t bytes_ = 0;
};

using DeviceBuffer = Allocation<false>;
using PinnedBuffer = Allocation<true>;

}  // namespace shardlm::cuda
