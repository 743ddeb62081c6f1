// CPU models are used straight from the mapped checkpoint; CUDA models are uploaded once, with a
// KV cache sized for exactly the sequences asked for.
#include "model_loader.h"

#include <fmt/core.h>

#include <algorithm>
#include <charconv>
#include <mutex>
#include <optional>

#include "core/error.h"
#include "model/llama_model.h"
#include "parallel/comm/tcp_communicator.h"
#include "parallel/comm/thread_group.h"
#include "plan/tp_plan.h"
#ifdef SHARDLM_WITH_CUDA
#include "backend/cuda/cuda_llama_model.h"
#include "runtime/cuda/cuda_sequence_runner.h"
#include "backend/cuda/device_query.h"
#include "parallel/cuda/nccl_communicator.h"
#include "parallel/cuda/peer_communicator.h"
#endif

namespace shardlm::cli {
namespace {

class CpuLoadedModel final : public LoadedModel {
 public:
  CpuLoadedModel(const std::filesystem::path& dir, const std::vector<int>& resident_layers)
      : model_(LlamaModel::load(dir)), runner_(model_) {
    model_.keep_layers_in_memory(resident_layers);
  }
  SequenceRunner& runner() override { return runner_; }

 private:
  LlamaModel model_;
  CpuSequenceRunner runner_;
};

#ifdef SHARDLM_WITH_CUDA
class CudaLoadedModel final : public LoadedModel {
 public:
  CudaLoadedModel(const std::filesystem::path& dir, const cuda::CudaModelOptions& options)
      : model_(ModelConfig::from_dir(dir), std::make_shared<const Checkpoint>(Checkpoint::open(dir)), options),
        runner_(model_) {
    const cuda::LoadReport& report = model_.load_report();
    fmt::print(stderr, "[shardlm] loaded {:.2f} GB onto {} in {:.2f} s ({:.1f} GB/s)\n", report.bytes / 1e9,
               options.placement ? "the GPUs" : fmt::format("cuda:{}", options.device), report.seconds,
               report.bytes / 1e9 / report.seconds);
    const cuda::OffloadReport& offload = model_.offload_report();
    if (offload.speeds.offloaded_bytes > 0)
      fmt::print(stderr,
                 "[shardlm] offloaded {:.2f} GB ({}): host-to-device {:.1f} GB/s, CPU reads {:.1f} GB/s\n",
                 offload.speeds.offloaded_bytes / 1e9, offload_exec_name(offload.exec),
                 offload.speeds.host_to_device_gbps, offload.speeds.cpu_read_gbps);
  }
  SequenceRunner& runner() override { return runner_; }

 private:
  cuda::CudaLlamaModel model_;
  cuda::CudaSequenceRunner runner_;
};
#endif

}  // namespace

DeviceSpec parse_device(const std::string& text) {
  if (text == "cpu") return {};
  if (text == "cuda") return {true, 0};
  if (text.rfind("cuda:", 0) == 0) {
    int index = -1;
    const char* first = text.data() + 5;
    const char* last = text.data() + text.size();
    const auto [end, error] = std::from_chars(first, last, index);
    if (error == std::errc() && end == last && first != last && index >= 0) return {true, index};
  }
  fail("--device: expected cpu, cuda or cuda:N, got \"{}\"", text);
}

void add_device_option(CLI::App& command, std::string& device) {
  command.add_option("--device", device, "cpu, cuda or cuda:N")->capture_default_str();
}

std::unique_ptr<LoadedModel> load_model(const std::filesystem::path& dir, const DeviceSpec& device, int n_sequences,
                                        int64_t max_tokens, const DevicePlan* device_map, OffloadExec offload_exec) {
  if (!device.is_cuda) {
    std::vector<int> resident_layers;
    if (device_map) {
      for (size_t il = 0; il < device_map->placement.layers.size(); ++il) {
        const DeviceId& where = device_map->placement.layers[il];
        if (where.is_gpu()) fail("--device-map puts model.layers.{} on {}; run with --device cuda", il, where.name());
        if (where.kind == DeviceKind::CPU) resident_layers.push_back(int(il));
      }
    }
    return std::make_unique<CpuLoadedModel>(dir, resident_layers);
  }
#ifdef SHARDLM_WITH_CUDA
  cuda::CudaModelOptions options;
  options.device = device.index;
  options.max_sequences = n_sequences;
  options.max_seq_len = max_tokens;
  if (device_map) options.placement = device_map->placement;
  options.offload_exec = offload_exec;
  return std::make_unique<CudaLoadedModel>(dir, options);
#else
  (void)n_sequences;
  (void)max_tokens;
  (void)offload_exec;
  fail("--device cuda:{}: this shardlm was built without the CUDA backend (configure with -DSHARDLM_CUDA=ON)",
       device.index);
#endif
}

void run_tensor_parallel_cpu(const std::filesystem::path& dir, int tp, const std::string& tp_plan,
                             const std::function<void(SequenceRunner&, bool is_first_rank)>& body) {
  const ModelConfig config = ModelConfig::from_dir(dir);
  const auto checkpoint = std::make_shared<const Checkpoint>(Checkpoint::open(dir));
  const TpPlan plan = resolve_tp_plan(config, weight_specs(*checkpoint), TpPlanSource::from_argument(tp_plan), tp);
  ThreadGroup::run(tp, [&](Communicator& comm) {
    const LlamaModel model(config, checkpoint, TensorParallelRank{&plan, comm.rank(), &comm});
    CpuSequenceRunner runner(model);
    body(runner, comm.rank() == 0);
  });
}

void run_tensor_parallel_cuda(const std::filesystem::path& dir, int tp, const std::string& tp_plan, int first_device,
                              int n_sequences, int64_t max_tokens,
                              const std::function<void(SequenceRunner&, bool is_first_rank)>& body) {
#ifdef SHARDLM_WITH_CUDA
  const ModelConfig config = ModelConfig::from_dir(dir);
  const auto checkpoint = std::make_shared<const Checkpoint>(Checkpoint::open(dir));
  const TpPlan plan = resolve_tp_plan(config, weight_specs(*checkpoint), TpPlanSource::from_argument(tp_plan), tp);
  int n_devices = 0;
  if (cudaGetDeviceCount(&n_devices) != cudaSuccess) n_devices = 0;
  // NCCL needs a GPU per rank; checked first, since a rank that cannot start would leave the
  // others waiting in ncclCommInitRank.
  if (first_device < 0 || first_device + tp > n_devices)
    fail("--tp {} from cuda:{} needs cuda:{}..cuda:{}, but {} CUDA devices are visible", tp, first_device,
         first_device, first_device + tp - 1, n_devices);
  // Decode's small all-reduces take the one-shot peer path where every GPU reaches every other.
  bool peer_everywhere = true;
  for (int a = first_device; a < first_device + tp; ++a)
    for (int b = first_device; b < first_device + tp; ++b)
      if (a != b && !cuda::can_access_peer(a, b)) peer_everywhere = false;
  std::mutex mutex;
  std::vector<cuda::NcclCommunicator*> communicators;
  auto abort_all = [&] {
    const std::lock_guard lock(mutex);
    for (cuda::NcclCommunicator* comm : communicators) comm->abort();
  };
  ThreadGroup::run(tp, [&](Communicator& host) {
    try {
      cuda::NcclCommunicator comm(host, first_device + host.rank());
      {
        const std::lock_guard lock(mutex);
        communicators.push_back(&comm);
      }
      struct Unregister {
        std::mutex& mutex;
        std::vector<cuda::NcclCommunicator*>& list;
        cuda::NcclCommunicator* comm;
        ~Unregister() {
          const std::lock_guard lock(mutex);
          list.erase(std::find(list.begin(), list.end(), comm));
        }
      } unregister{mutex, communicators, &comm};
      cuda::CudaModelOptions options;
      options.device = first_device + host.rank();
      options.max_sequences = n_sequences;
      options.max_seq_len = max_tokens;
      std::optional<cuda::PeerCommunicator> peer;
      if (peer_everywhere) peer.emplace(host, options.device, comm);
      options.tensor_parallel =
          cuda::CudaTensorParallel{&plan, peer ? static_cast<cuda::DeviceCommunicator*>(&*peer) : &comm};
      cuda::CudaLlamaModel model(config, checkpoint, options);
      host.barrier();  // every rank has loaded before any collective of a step is issued
      cuda::CudaSequenceRunner runner(model);
      body(runner, host.rank() == 0);
    } catch (...) {
      abort_all();
      throw;
    }
  });
#else
  (void)dir, (void)tp, (void)tp_plan, (void)n_sequences, (void)max_tokens, (void)body;
  fail("--tp {} on cuda:{}: this shardlm was built without the CUDA backend", tp, first_device);
#endif
}

void run_tensor_parallel_process(const std::filesystem::path& dir, const LaunchEnv& env, const std::string& tp_plan,
                                 const std::optional<GpuRankOptions>& gpu,
                                 const std::function<void(SequenceRunner&, bool is_first_rank)>& body) {
  const std::unique_ptr<TcpCommunicator> comm =
      TcpCommunicator::connect({env.rank, env.world_size, env.master_addr, env.master_port, CommOptions{}});
  try {
    const ModelConfig config = ModelConfig::from_dir(dir);
    const auto checkpoint = std::make_shared<const Checkpoint>(Checkpoint::open(dir));
    const TpPlan plan =
        resolve_tp_plan(config, weight_specs(*checkpoint), TpPlanSource::from_argument(tp_plan), env.world_size);
    if (!gpu) {
      const LlamaModel model(config, checkpoint, TensorParallelRank{&plan, env.rank, comm.get()});
      CpuSequenceRunner runner(model);
      body(runner, env.rank == 0);
      return;
    }
#ifdef SHARDLM_WITH_CUDA
    // Processes cannot share the peer all-reduce's pointers: NCCL does every collective.
    cuda::CudaModelOptions options;
    options.device = gpu->first_device + env.local_rank;
    options.max_sequences = gpu->n_sequences;
    options.max_seq_len = gpu->max_tokens;
    cuda::NcclCommunicator nccl(*comm, options.device);
    options.tensor_parallel = cuda::CudaTensorParallel{&plan, &nccl};
    cuda::CudaLlamaModel model(config, checkpoint, options);
    comm->barrier();
    cuda::CudaSequenceRunner runner(model);
    body(runner, env.rank == 0);
#else
    fail("--device cuda:{} with a launcher: this shardlm was built without the CUDA backend", gpu->first_device);
#endif
  } catch (const std::exception& error) {
    comm->abort(fmt::format("rank {}: {}", env.rank, error.what()));
    throw;
  }
}

}  // namespace shardlm::cli
