// Turns CUDA and cuBLAS status codes into shardlm::Error.
#include "core/cuda/cuda_check.h"

#include "core/error.h"

namespace shardlm::cuda {

void throw_cuda_error(cudaError_t status, const char* call, const char* file, int line) {
  fail("CUDA error {} ({}) in {} at {}:{}", cudaGetErrorName(status), cudaGetErrorString(status), call, file, line);
}

void throw_cublas_error(cublasStatus_t status, const char* call, const char* file, int line) {
  fail("cuBLAS error {} in {} at {}:{}", cublasLtGetStatusString(status), call, file, line);
}

void throw_unsupported(const char* what, long long value) { fail("CUDA backend: {} is not supported (got {})", what, value); }

}  // namespace shardlm::cuda
