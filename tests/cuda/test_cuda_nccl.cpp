// The NCCL backend on what one GPU allows (NCCL refuses two ranks on one device): a group of one
// rank is created through the host rendezvous, its all-reduce and all-gather run in order on the
// stream and inside a captured CUDA graph, and an aborted communicator refuses further work by name.
#include <gtest/gtest.h>

#include <vector>

#include "core/cuda/device_buffer.h"
#include "parallel/cuda/nccl_communicator.h"
#include "core/error.h"
#include "cuda_test_support.h"
#include "parallel/comm/thread_group.h"

namespace shardlm {
namespace {

TEST(Nccl, OneRankGroupRunsCollectivesEagerlyAndInAGraph) {
  SKIP_WITHOUT_CUDA_DEVICE();
  ThreadGroup::run(1, [](Communicator& host) {
    cuda::NcclCommunicator comm(host, 0);
    EXPECT_EQ(comm.rank(), 0);
    EXPECT_EQ(comm.size(), 1);
    EXPECT_TRUE(comm.capturable());
    cudaStream_t stream = nullptr;
    CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    const std::vector<float> values = {1.5f, -2.0f, 3.25f, 0.0f};
    cuda::DeviceBuffer data(values.size() * 4), gathered(values.size() * 4);
    CUDA_CHECK(cudaMemcpy(data.get(), values.data(), values.size() * 4, cudaMemcpyHostToDevice));
    comm.all_reduce_sum(data.get(), values.size(), DType::F32, stream);
    comm.all_gather(data.get(), gathered.get(), values.size(), DType::F32, stream);
    cudaGraph_t graph = nullptr;
    CUDA_CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
    comm.all_reduce_sum(gathered.get(), values.size(), DType::F32, stream);
    CUDA_CHECK(cudaStreamEndCapture(stream, &graph));
    cudaGraphExec_t exec = nullptr;
    CUDA_CHECK(cudaGraphInstantiate(&exec, graph, 0));
    CUDA_CHECK(cudaGraphLaunch(exec, stream));
    std::vector<float> result(values.size());
    CUDA_CHECK(cudaMemcpyAsync(result.data(), gathered.get(), result.size() * 4, cudaMemcpyDeviceToHost, stream));
    CUDA_CHECK(cudaStreamSynchronize(stream));
    EXPECT_EQ(result, values);  // a sum over one rank is the identity
    CUDA_CHECK(cudaGraphExecDestroy(exec));
    CUDA_CHECK(cudaGraphDestroy(graph));
    comm.abort();
    EXPECT_THROW(comm.all_reduce_sum(data.get(), values.size(), DType::F32, stream), Error);
    CUDA_CHECK(cudaStreamDestroy(stream));
  });
}

}  // namespace
}  // namespace shardlm
