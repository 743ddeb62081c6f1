// Error checks for CUDA runtime and cuBLAS calls: a failure throws shardlm::Error with the call's
// text, file and line. Kept free of fmt so .cu files can include it.
#pragma once

#include <cublasLt.h>
#include <cuda_runtime.h>

namespace shardlm::cuda {

[[noreturn]] void throw_cuda_error(cudaError_t status, const char* call, const char* file, int line);
[[noreturn]] void throw_cublas_error(cublasStatus_t status, const char* call, const char* file, int line);
// For launchers: a shape the kernels do not handle ("<what> is not supported: <value>").
[[noreturn]] void throw_unsupported(const char* what, long long value);

}  // namespace shardlm::cuda

#define CUDA_CHECK(call)                                                                       \
  do {                                                                                         \
    const cudaError_t cuda_status_ = (call);                                                   \
    if (cuda_status_ != cudaSuccess) ::shardlm::cuda::throw_cuda_error(cuda_status_, #call, __FILE__, __LINE__); \
  } while (0)

#define CUBLAS_CHECK(call)                                                                     \
  do {                                                                                         \
    const cublasStatus_t cublas_status_ = (call);                                              \
    if (cublas_status_ != CUBLAS_STATUS_SUCCESS)                                               \
      ::shardlm::cuda::throw_cublas_error(cublas_status_, #call, __FILE__, __LINE__);           \
  } while (0)

// After every kernel launch: launch-configuration errors surface here, not at a later sync.
#define CUDA_CHECK_LAUNCH() CUDA_CHECK(cudaGetLastError())
