// The one-shot protocol (see backend/cuda/peer_communicator.h). Flags hold the number of the call that raised
// them, so they never need resetting; the call number lives in device memory (epoch) and advances
// once per call on every rank, which keeps graph replays in step.
#include <cuda_bf16.h>

#include "core/cuda/cuda_check.h"
#include "ops/cuda/peer_all_reduce.h"

namespace shardlm::cuda {

// ---------------------------------------------------------------------------------------------
// kernels

__device__ __forceinline__ void store_release_system(uint32_t* address, uint32_t value) {
  asm volatile("st.release.sys.global.u32 [%0], %1;" ::"l"(address), "r"(value) : "memory");
}

__device__ __forceinline__ uint32_t load_acquire_system(const uint32_t* address) {
  uint32_t value;
  asm volatile("ld.acquire.sys.global.u32 %0, [%1];" : "=r"(value) : "l"(address) : "memory");
  return value;
}

template <typename T>
__device__ __forceinline__ float widen(T value);
template <>
__device__ __forceinline__ float widen<float>(float value) { return value; }
template <>
__device__ __forceinline__ float widen<__nv_bfloat16>(__nv_bfloat16 value) { return __bfloat162float(value); }

template <typename T>
__device__ __forceinline__ T narrow(float value);
template <>
__device__ __forceinline__ float narrow<float>(float value) { return value; }
template <>
__device__ __forceinline__ __nv_bfloat16 narrow<__nv_bfloat16>(float value) { return __float2bfloat16(value); }

template <typename T>
__global__ void peer_all_reduce_kernel(T* data, size_t count, PeerTable table, int rank, int size, size_t max_bytes,
                                       uint32_t* epoch_counter) {
  const uint32_t epoch = *epoch_counter + 1;
  const size_t parity_offset = (epoch & 1) * max_bytes;
  T* mine = reinterpret_cast<T*>(static_cast<char*>(table.slots[rank]) + parity_offset);
  for (size_t i = threadIdx.x; i < count; i += blockDim.x) mine[i] = data[i];
  __syncthreads();
  if (int(threadIdx.x) < size) {
    __threadfence_system();
    store_release_system(table.flags[threadIdx.x] + rank, epoch);  // "my slot for this call is ready"
    while (load_acquire_system(table.flags[rank] + threadIdx.x) < epoch) {
    }
  }
  __syncthreads();
  for (size_t i = threadIdx.x; i < count; i += blockDim.x) {
    float sum = 0.0f;
    for (int r = 0; r < size; ++r)
      sum += widen(reinterpret_cast<const T*>(static_cast<const char*>(table.slots[r]) + parity_offset)[i]);
    data[i] = narrow<T>(sum);
  }
  if (threadIdx.x == 0) *epoch_counter = epoch;
}

// ---------------------------------------------------------------------------------------------
// launchers

void launch_peer_all_reduce(void* data, size_t count, bool bf16, const PeerTable& table, int rank, int size,
                            size_t max_bytes, uint32_t* epoch, cudaStream_t stream) {
  constexpr int kThreads = 1024;
  if (bf16)
    peer_all_reduce_kernel<<<1, kThreads, 0, stream>>>(static_cast<__nv_bfloat16*>(data), count, table, rank, size,
                                                       max_bytes, epoch);
  else
    peer_all_reduce_kernel<<<1, kThreads, 0, stream>>>(static_cast<float*>(data), count, table, rank, size, max_bytes,
                                                       epoch);
  CUDA_CHECK_LAUNCH();
}

}  // namespace shardlm::cuda
