// Free memory per GPU through cudaMemGetInfo, which creates a context on each device it asks.
#include "backend/cuda/device_query.h"

#include "core/cuda/cuda_check.h"
#include "core/error.h"

namespace shardlm::cuda {

void require_cuda_device(int index) {
  int count = 0;
  const cudaError_t error = cudaGetDeviceCount(&count);
  if (error != cudaSuccess) {
    cudaGetLastError();
    fail("--device cuda:{}: no CUDA device is visible ({}: {})", index, cudaGetErrorName(error),
         cudaGetErrorString(error));
  }
  if (count == 0) fail("--device cuda:{}: no CUDA device is visible", index);
  if (index >= count) fail("--device cuda:{}: only {} CUDA devices are visible (cuda:0..cuda:{})", index, count, count - 1);
}

std::vector<DeviceBudget> detect_cuda_devices() {
  int count = 0;
  // No driver or no device is not an error here: the plan then uses the CPU (and disk) only.
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();
    return {};
  }
  std::vector<DeviceBudget> budgets;
  for (int index = 0; index < count; ++index) {
    CUDA_CHECK(cudaSetDevice(index));
    size_t free_bytes = 0, total_bytes = 0;
    CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
    budgets.push_back({DeviceId::cuda(index), int64_t(free_bytes), "free memory"});
  }
  return budgets;
}

bool can_access_peer(int device, int peer) {
  int can = 0;
  return device != peer && cudaDeviceCanAccessPeer(&can, device, peer) == cudaSuccess && can;
}

void enable_peer_access(int device, int peer) {
  CUDA_CHECK(cudaSetDevice(device));
  const cudaError_t status = cudaDeviceEnablePeerAccess(peer, 0);
  if (status == cudaErrorPeerAccessAlreadyEnabled) cudaGetLastError();  // clears the sticky report
  else CUDA_CHECK(status);
}

}  // namespace shardlm::cuda
