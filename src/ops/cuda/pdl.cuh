// Programmatic dependent launch (Hopper): a kernel launched with launch_pdl may be scheduled while
// its predecessor in the stream is still finishing, hiding the launch gap (inside CUDA graphs too).
// Every such kernel calls wait_for_predecessor() before it reads anything a predecessor wrote or
// writes anything a predecessor reads; work on inputs nobody writes (weights) may come before it.
// One exception, argued where it is made: one row's down-and-combine kernel (expert_mlp.cu) reads
// the routes, written two kernels back, before its wait; a kernel runs allow_successor() only after
// its own wait, so the kernel two back has finished by then.
#pragma once

#include <cuda_runtime.h>

#include <utility>

#include "core/cuda/cuda_check.h"

namespace shardlm::cuda {

__device__ __forceinline__ void wait_for_predecessor() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

// Lets the next kernel in the stream start launching (it still waits for this one to finish).
__device__ __forceinline__ void allow_successor() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" :::);
#endif
}

template <typename... KernelArgs, typename... Args>
void launch_pdl(void (*kernel)(KernelArgs...), dim3 grid, dim3 block, size_t shared_bytes, cudaStream_t stream,
                Args&&... args) {
  cudaLaunchAttribute attribute{};
  attribute.id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attribute.val.programmaticStreamSerializationAllowed = 1;
  cudaLaunchConfig_t config{};
  config.gridDim = grid;
  config.blockDim = block;
  config.dynamicSmemBytes = shared_bytes;
  config.stream = stream;
  config.attrs = &attribute;
  config.numAttrs = 1;
  CUDA_CHECK(cudaLaunchKernelEx(&config, kernel, std::forward<Args>(args)...));
}

}  // namespace shardlm::cuda
