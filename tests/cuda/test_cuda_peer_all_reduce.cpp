// The one-shot peer all-reduce: 2 and 4 rank threads (sharing this machine's GPU, the protocol is
// the same as across NVLink) sum bf16 and f32 vectors bit-identically to the host collectives (f32
// sums in rank order), call after call (slot parity, flags that only grow), inside a replayed CUDA
// graph, and hand messages over the size limit to the fallback.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <vector>

#include "parallel/cuda/host_staged_communicator.h"
#include "parallel/cuda/peer_communicator.h"
#include "core/dtype.h"
#include "cuda_test_support.h"
#include "parallel/comm/thread_group.h"

namespace shardlm {
namespace {

// Rank r's input for call `call`: small integers and fractions, so sums are exact in f32 but
// rounding to bf16 still matters.
std::vector<float> input(int rank, int call, size_t count) {
  std::mt19937 rng(uint32_t(rank * 1000 + call));
  std::uniform_real_distribution<float> value(-4.0f, 4.0f);
  std::vector<float> values(count);
  for (float& v : values) v = value(rng);
  return values;
}

template <typename Fn>
void on_ranks(int size, Fn&& body) {
  ThreadGroup::run(size, [&](Communicator& host) {
    CUDA_CHECK(cudaSetDevice(0));
    cuda::HostStagedCommunicator fallback(host);
    cuda::PeerCommunicator peer(host, 0, fallback, 64 << 10);
    cudaStream_t stream = nullptr;
    CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    body(host, peer, stream);
    CUDA_CHECK(cudaStreamSynchronize(stream));
    CUDA_CHECK(cudaStreamDestroy(stream));
  });
}

// The expected sum: f32 in rank order, then narrowed like the device result.
std::vector<float> expected_sum(int size, int call, size_t count, DType dtype) {
  std::vector<float> sum(count, 0.0f);
  for (int r = 0; r < size; ++r) {
    const std::vector<float> values = input(r, call, count);
    for (size_t i = 0; i < count; ++i)
      sum[i] += dtype == DType::BF16 ? bf16_to_f32(f32_to_bf16(values[i])) : values[i];
  }
  if (dtype == DType::BF16)
    for (float& v : sum) v = bf16_to_f32(f32_to_bf16(v));
  return sum;
}

// Ranks sharing a GPU must not make the device wait while a peer's all-reduce spins for them:
// copies go through pinned memory allocated up front (pageable copies and freeing pinned memory
// can synchronise the whole device).
void upload(const std::vector<float>& values, DType dtype, void* device, cudaStream_t stream,
            cuda::PinnedBuffer& pinned) {
  if (dtype == DType::F32) {
    std::copy(values.begin(), values.end(), pinned.get<float>());
  } else {
    for (size_t i = 0; i < values.size(); ++i) pinned.get<uint16_t>()[i] = f32_to_bf16(values[i]);
  }
  CUDA_CHECK(cudaMemcpyAsync(device, pinned.get(), values.size() * dtype_size(dtype), cudaMemcpyHostToDevice, stream));
  CUDA_CHECK(cudaStreamSynchronize(stream));
}

std::vector<float> download(void* device, size_t count, DType dtype, cudaStream_t stream,
                            cuda::PinnedBuffer& pinned) {
  CUDA_CHECK(cudaMemcpyAsync(pinned.get(), device, count * dtype_size(dtype), cudaMemcpyDeviceToHost, stream));
  CUDA_CHECK(cudaStreamSynchronize(stream));
  std::vector<float> values(count);
  for (size_t i = 0; i < count; ++i)
    values[i] = dtype == DType::F32 ? pinned.get<float>()[i] : bf16_to_f32(pinned.get<uint16_t>()[i]);
  return values;
}

TEST(PeerAllReduce, SumsMatchTheHostCollectivesCallAfterCall) {
  SKIP_WITHOUT_CUDA_DEVICE();
  for (int size : {2, 4}) {
    // 4096 bf16 is the decode message of an 8B model; 40000 bf16 (80 KB) goes to the fallback.
    for (auto [count, dtype] : {std::pair<size_t, DType>{1, DType::F32}, {1000, DType::F32}, {4096, DType::BF16},
                                {40000, DType::BF16}}) {
      SCOPED_TRACE(testing::Message() << size << " ranks, " << count << " x " << dtype_name(dtype));
      std::vector<std::vector<std::vector<float>>> results(static_cast<size_t>(size));
      on_ranks(size, [&](Communicator& host, cuda::PeerCommunicator& peer, cudaStream_t stream) {
        cuda::DeviceBuffer data(count * dtype_size(dtype));
        cuda::PinnedBuffer pinned(count * 4);
        for (int call = 0; call < 6; ++call) {
          upload(input(host.rank(), call, count), dtype, data.get(), stream, pinned);
          peer.all_reduce_sum(data.get(), count, dtype, stream);
          results[size_t(host.rank())].push_back(download(data.get(), count, dtype, stream, pinned));
        }
        host.barrier();  // no rank frees memory while another's last all-reduce may still wait
      });
      for (int call = 0; call < 6; ++call) {
        const std::vector<float> expected = expected_sum(size, call, count, dtype);
        for (int rank = 0; rank < size; ++rank)
          ASSERT_EQ(results[size_t(rank)][size_t(call)], expected) << "rank " << rank << " call " << call;
      }
    }
  }
}

TEST(PeerAllReduce, ReplaysInsideACudaGraph) {
  SKIP_WITHOUT_CUDA_DEVICE();
  constexpr int kSize = 2;
  constexpr size_t kCount = 4096;
  std::vector<std::vector<std::vector<float>>> results(kSize);
  on_ranks(kSize, [&](Communicator& host, cuda::PeerCommunicator& peer, cudaStream_t stream) {
    cuda::DeviceBuffer data(kCount * 2);
    cuda::PinnedBuffer pinned(kCount * 4);
    cudaGraph_t graph = nullptr;
    CUDA_CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
    peer.all_reduce_sum(data.get(), kCount, DType::BF16, stream);
    CUDA_CHECK(cudaStreamEndCapture(stream, &graph));
    cudaGraphExec_t exec = nullptr;
    CUDA_CHECK(cudaGraphInstantiate(&exec, graph, 0));
    for (int call = 0; call < 5; ++call) {
      upload(input(host.rank(), call, kCount), DType::BF16, data.get(), stream, pinned);
      CUDA_CHECK(cudaGraphLaunch(exec, stream));
      results[size_t(host.rank())].push_back(download(data.get(), kCount, DType::BF16, stream, pinned));
    }
    host.barrier();
    CUDA_CHECK(cudaGraphExecDestroy(exec));
    CUDA_CHECK(cudaGraphDestroy(graph));
  });
  for (int call = 0; call < 5; ++call)
    for (int rank = 0; rank < kSize; ++rank)
      EXPECT_EQ(results[size_t(rank)][size_t(call)], expected_sum(kSize, call, kCount, DType::BF16)) << "call " << call;
}

}  // namespace
}  // namespace shardlm
