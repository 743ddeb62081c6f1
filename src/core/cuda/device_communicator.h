// Collectives on device memory for tensor-parallel GPU ranks, enqueued on the rank's stream so
// they order with its kernels. Two backends: NCCL (nccl_communicator.h), which CUDA graphs can
// capture, and a host-staged one that copies through pinned memory and a host Communicator (so
// ranks sharing one GPU, as in tests on a one-GPU machine, run the same code).
#pragma once

#include <cuda_runtime.h>

#include <cstddef>

#include "core/dtype.h"

namespace shardlm::cuda {

class DeviceCommunicator {
 public:
  virtual ~DeviceCommunicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // Whether the collectives can be captured into a CUDA graph (no host work inside them).
  virtual bool capturable() const = 0;

  // In place: data[i] becomes the sum over ranks (f32 or bf16).
  virtual void all_reduce_sum(void* data, size_t count, DType dtype, cudaStream_t stream) = 0;
  // recv holds size() * count elements: rank r's send lands at recv + r * count.
  virtual void all_gather(const void* send, void* recv, size_t count, DType dtype, cudaStream_t stream) = 0;
};

}  // namespace shardlm::cuda
