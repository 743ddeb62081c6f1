// `shardlm bench-comm`: all-reduce latency by message size between tensor-parallel GPU ranks, for
// the one-shot peer path and for NCCL, as JSON. Each figure is one all-reduce inside a replayed CUDA
// graph of many (as decode runs them), so launch overhead is not counted. --shared-gpu puts every
// rank on one GPU (the peer protocol only: NCCL refuses two ranks on one device).
#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <optional>
#include <vector>

#include "commands.h"
#include "core/error.h"
#include "common_options.h"
#include "engine/engine_options.h"
#include "option_checks.h"
#include "parallel/comm/thread_group.h"
#ifdef SHARDLM_WITH_CUDA
#include "parallel/cuda/host_staged_communicator.h"
#include "parallel/cuda/nccl_communicator.h"
#include "parallel/cuda/peer_communicator.h"
#endif

namespace shardlm::cli {
namespace {

struct BenchCommOptions {
  std::string device = "cuda:0";
  int tp = 2;
  bool shared_gpu = false;
};

#ifdef SHARDLM_WITH_CUDA
constexpr int kCallsPerGraph = 100;
constexpr int kReplays = 5;
constexpr size_t kPeerMaxBytes = 64 << 10;

// Microseconds per all-reduce of `bytes` (bf16), best of kReplays replays of kCallsPerGraph calls.
double time_all_reduce(cuda::DeviceCommunicator& comm, Communicator& host, size_t bytes, cudaStream_t stream) {
  cuda::DeviceBuffer data(bytes);
  CUDA_CHECK(cudaMemsetAsync(data.get(), 0, bytes, stream));
  cudaGraph_t graph = nullptr;
  CUDA_CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
  for (int call = 0; call < kCallsPerGraph; ++call) comm.all_reduce_sum(data.get(), bytes / 2, DType::BF16, stream);
  CUDA_CHECK(cudaStreamEndCapture(stream, &graph));
  cudaGraphExec_t exec = nullptr;
  CUDA_CHECK(cudaGraphInstantiate(&exec, graph, 0));
  cudaEvent_t start, stop;
  CUDA_CHECK(cudaEventCreate(&start));
  CUDA_CHECK(cudaEventCreate(&stop));
  double best_us = 0;
  for (int replay = 0; replay <= kReplays; ++replay) {  // replay 0 warms up
    host.barrier();
    CUDA_CHECK(cudaEventRecord(start, stream));
    CUDA_CHECK(cudaGraphLaunch(exec, stream));
    CUDA_CHECK(cudaEventRecord(stop, stream));
    CUDA_CHECK(cudaEventSynchronize(stop));
    float ms = 0;
    CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
    const double us = double(ms) * 1e3 / kCallsPerGraph;
    if (replay > 0 && (best_us == 0 || us < best_us)) best_us = us;
  }
  host.barrier();
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  CUDA_CHECK(cudaGraphExecDestroy(exec));
  CUDA_CHECK(cudaGraphDestroy(graph));
  return best_us;
}

void run_bench_comm(const BenchCommOptions& options) {
  const DeviceSpec device = parse_device(options.device);
  if (!device.is_cuda) fail("bench-comm needs GPUs (--device cuda:N)");
  int n_devices = 0;
  if (cudaGetDeviceCount(&n_devices) != cudaSuccess) n_devices = 0;
  const int needed = options.shared_gpu ? device.index + 1 : device.index + options.tp;
  if (needed > n_devices)
    fail("bench-comm --tp {} from cuda:{}{} needs {} CUDA devices, {} visible", options.tp, device.index,
         options.shared_gpu ? " --shared-gpu" : "", needed, n_devices);
  const std::vector<size_t> sizes = {256, 1 << 10, 4 << 10, 8 << 10, 16 << 10, 32 << 10, 64 << 10,
                                     256 << 10, 1 << 20, 4 << 20, 16 << 20};
  std::vector<nlohmann::json> rows(sizes.size());
  ThreadGroup::run(options.tp, [&](Communicator& host) {
    const int rank_device = options.shared_gpu ? device.index : device.index + host.rank();
    CUDA_CHECK(cudaSetDevice(rank_device));
    cudaStream_t stream = nullptr;
    CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    std::optional<cuda::NcclCommunicator> nccl;
    std::optional<cuda::HostStagedCommunicator> staged;
    if (options.shared_gpu) staged.emplace(host);
    else nccl.emplace(host, rank_device);
    cuda::DeviceCommunicator& fallback = nccl ? static_cast<cuda::DeviceCommunicator&>(*nccl) : *staged;
    cuda::PeerCommunicator peer(host, rank_device, fallback, kPeerMaxBytes);
    for (size_t i = 0; i < sizes.size(); ++i) {
      nlohmann::json row = {{"bytes", sizes[i]}};
      if (sizes[i] <= kPeerMaxBytes) row["peer_us"] = time_all_reduce(peer, host, sizes[i], stream);
      if (nccl) row["nccl_us"] = time_all_reduce(*nccl, host, sizes[i], stream);
      if (host.rank() == 0) rows[i] = row;
    }
    CUDA_CHECK(cudaStreamSynchronize(stream));
    host.barrier();
    CUDA_CHECK(cudaStreamDestroy(stream));
  });
  const nlohmann::json result = {{"tp", options.tp},
                                 {"devices", options.shared_gpu ? fmt::format("cuda:{} shared", device.index)
                                                                : fmt::format("cuda:{}..cuda:{}", device.index,
                                                                              device.index + options.tp - 1)},
                                 {"dtype", "bf16"},
                                 {"all_reduce", rows}};
  fmt::print("{}\n", result.dump(2));
}
#else
void run_bench_comm(const BenchCommOptions& options) {
  fail("bench-comm --device {}: this shardlm was built without the CUDA backend", options.device);
}
#endif

}  // namespace

void add_bench_comm_command(CLI::App& app) {
  auto options = std::make_shared<BenchCommOptions>();
  CLI::App* command =
      app.add_subcommand("bench-comm", "Measure all-reduce latency by message size between GPU ranks (peer, NCCL)");
  add_device_option(*command, options->device);
  command->add_option("--tp", options->tp, "Ranks, one GPU each from --device on")
      ->check(integer_in(2, 8))
      ->capture_default_str();
  command->add_flag("--shared-gpu", options->shared_gpu,
                    "Put every rank on --device (the peer protocol only; NCCL needs a GPU per rank)");
  command->callback([options] { run_bench_comm(*options); });
}

}  // namespace shardlm::cli
