#include "parallel/cuda/nccl_communicator.h"

#include <cstdlib>

#include "core/cuda/cuda_check.h"
#include "core/error.h"

namespace shardlm::cuda {
namespace {

void nccl_check(ncclResult_t result, const char* what) {
  if (result != ncclSuccess) fail("NCCL {} failed: {}", what, ncclGetErrorString(result));
}

ncclDataType_t nccl_type(DType dtype) {
  switch (dtype) {
    case DType::F32: return ncclFloat32;
    case DType::BF16: return ncclBfloat16;
    case DType::F16: return ncclFloat16;
  }
  return ncclFloat32;
}

}  // namespace

NcclCommunicator::NcclCommunicator(Communicator& host, int device) : rank_(host.rank()), size_(host.size()) {
  setenv("NCCL_NVLS_ENABLE", "0", /*overwrite=*/0);
  ncclUniqueId id{};
  if (rank_ == 0) nccl_check(ncclGetUniqueId(&id), "ncclGetUniqueId");
  // The id is plain bytes; the host group carries them as f32-sized words.
  static_assert(sizeof(id) % sizeof(float) == 0);
  host.broadcast(reinterpret_cast<float*>(&id), sizeof(id) / sizeof(float), 0);
  CUDA_CHECK(cudaSetDevice(device));
  ncclComm_t comm = nullptr;
  nccl_check(ncclCommInitRank(&comm, size_, id, rank_), "ncclCommInitRank");
  comm_ = comm;
}

NcclCommunicator::~NcclCommunicator() {
  if (ncclComm_t comm = comm_.exchange(nullptr)) ncclCommDestroy(comm);
}

ncclComm_t NcclCommunicator::live() const {
  ncclComm_t comm = comm_;
  if (!comm) fail("NCCL rank {}: the group was aborted because another rank failed", rank_);
  return comm;
}

void NcclCommunicator::abort() {
  if (ncclComm_t comm = comm_.exchange(nullptr)) ncclCommAbort(comm);
}

void NcclCommunicator::all_reduce_sum(void* data, size_t count, DType dtype, cudaStream_t stream) {
  nccl_check(ncclAllReduce(data, data, count, nccl_type(dtype), ncclSum, live(), stream), "all-reduce");
}

void NcclCommunicator::all_gather(const void* send, void* recv, size_t count, DType dtype, cudaStream_t stream) {
  nccl_check(ncclAllGather(send, recv, count, nccl_type(dtype), live(), stream), "all-gather");
}

}  // namespace shardlm::cuda
