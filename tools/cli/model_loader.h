// Chooses the backend from --device and loads the model there, ready for the generation loop.
#pragma once

#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "io/model_config.h"
#include "plan/device_map/offload_policy.h"
#include "plan/device_map/planner.h"
#include "parallel/launch_env.h"
#include "runtime/sequence_runner.h"

namespace shardlm::cli {

struct DeviceSpec {
  bool is_cuda = false;
  int index = 0;
};

// "cpu", "cuda" (= cuda:0) or "cuda:N"; anything else is an error naming --device.
DeviceSpec parse_device(const std::string& text);
void add_device_option(CLI::App& command, std::string& device);

// A model loaded on some device, with the runner that drives it.
class LoadedModel {
 public:
  virtual ~LoadedModel() = default;
  virtual SequenceRunner& runner() = 0;
};

// Room for n_sequences sequences of max_tokens tokens each (the GPU KV cache is sized from it).
// With a device map: on the CPU, layers on "cpu" are copied into RAM and the others read in place
// from the mapped checkpoint; on a GPU, every unit goes where the plan says and offloaded layers
// run as offload_exec says.
std::unique_ptr<LoadedModel> load_model(const std::filesystem::path& dir, const DeviceSpec& device, int n_sequences,
                                        int64_t max_tokens, const DevicePlan* device_map = nullptr,
                                        OffloadExec offload_exec = OffloadExec::AUTO);

// Tensor parallelism over `tp` CPU ranks, one thread each: resolves the plan (--tp-plan: "auto" or
// a file) before any weight is read, then runs body(runner, is_first_rank) on every rank. Every
// rank computes the same tokens; only the first should report. A failing rank stops the others.
void run_tensor_parallel_cpu(const std::filesystem::path& dir, int tp, const std::string& tp_plan,
                             const std::function<void(SequenceRunner&, bool is_first_rank)>& body);

// Tensor parallelism over `tp` GPUs, cuda:first_device onwards, one thread each, NCCL between them
// (and a one-shot peer all-reduce for decode's small messages where the GPUs reach each other);
// the plan is resolved before any weight is read. Each rank's KV cache holds n_sequences sequences
// of max_tokens tokens. If a rank fails, every rank's NCCL communicator is aborted so none waits on
// it, and the first failure is rethrown.
void run_tensor_parallel_cuda(const std::filesystem::path& dir, int tp, const std::string& tp_plan, int first_device,
                              int n_sequences, int64_t max_tokens,
                              const std::function<void(SequenceRunner&, bool is_first_rank)>& body);

// A launched GPU rank: cuda:(first_device + LOCAL_RANK), with a KV cache for n_sequences of
// max_tokens tokens.
struct GpuRankOptions {
  int first_device = 0;
  int n_sequences = 1;
  int64_t max_tokens = 0;
};

// This process as one rank of a group started by a launcher (shardlm launch, torchrun, Slurm,
// mpirun): joins the others over TCP at MASTER_ADDR:MASTER_PORT (NCCL's rendezvous too, for GPU
// ranks), then runs body on its rank, on the CPU or, with gpu, on its GPU. An error on this rank
// is sent to the group (which fails within seconds) before it is rethrown.
void run_tensor_parallel_process(const std::filesystem::path& dir, const LaunchEnv& env, const std::string& tp_plan,
                                 const std::optional<GpuRankOptions>& gpu,
                                 const std::function<void(SequenceRunner&, bool is_first_rank)>& body);

}  // namespace shardlm::cli
