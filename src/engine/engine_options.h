// What an Engine is opened with: the model, the device, and how it is spread (a device map, or
// tensor-parallel ranks as threads of this process or as launched processes).
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "core/communicator.h"
#include "io/model_config.h"
#include "parallel/launch_env.h"
#include "plan/device_map/offload_policy.h"
#include "plan/device_map/planner.h"

namespace shardlm {

struct DeviceSpec {
  bool is_cuda = false;
  int index = 0;  // cuda:index; with tensor parallelism, the first rank's GPU
};

// "cpu", "cuda" (= cuda:0) or "cuda:N"; anything else is an error naming --device.
DeviceSpec parse_device(const std::string& text);

struct EngineOptions {
  std::filesystem::path model_dir;
  // Instead of model_dir: random bf16 weights of this shape, from random_seed (benchmarks; one GPU,
  // the model whole).
  std::optional<ModelConfig> random_weights;
  uint64_t random_seed = 1234;
  DeviceSpec device;
  int max_sequences = 1;    // sequences held at once (KV-cache slots)
  int64_t max_seq_len = 0;  // tokens per sequence, prompt included; 0: the model's context, capped at 4096
  // The paged KV cache: blocks of kv_block_size positions (a power of two), kv_cache_tokens
  // positions in all, rounded up to whole blocks (0: max_sequences x max_seq_len, so that every
  // sequence can reach its end at once and no step ever waits for blocks). Full blocks of a prompt
  // are shared with later prompts that start the same way (Engine::reuse_prefix) unless
  // prefix_caching is off.
  int kv_block_size = 16;
  int64_t kv_cache_tokens = 0;
  // Instead of kv_cache_tokens: the bytes each rank's keys and values may take (bf16 on GPUs, f32
  // on the CPU), or (one GPU) the share of the GPU's memory the whole process may use, the KV
  // cache taking what the weights and buffers leave of it.
  int64_t kv_cache_bytes = 0;
  double gpu_memory_utilization = 0;
  bool prefix_caching = true;
  // Token rows a GPU forward pass takes (at least max_sequences, so that a decode step is one
  // pass); longer steps run in several.
  int max_rows_per_pass = 512;

  // A device map (planned for this model): units on GPUs, in RAM or on disk. Not with tp.
  std::optional<DevicePlan> device_map;
  OffloadExec offload_exec = OffloadExec::AUTO;
  // The CUDA device each cuda:N of the map runs on (empty: device N), or without a map the device of
  // each tensor-parallel rank thread, one entry per rank (empty: device.index + rank). Entries may
  // repeat, so that one GPU runs a map over several or several ranks (tests, benchmarks of the
  // hand-offs, serving with --tp on a machine of one GPU); ranks sharing a GPU all-reduce through
  // host memory, since NCCL refuses them.
  std::vector<int> cuda_devices;

  // Tensor parallelism over `tp` ranks, threads of this process: CPU ranks, or GPUs cuda:index..
  // or cuda_devices (NCCL, or host memory where ranks share a GPU). Under a launcher
  // (launch.distributed()), this process is one rank of launch.world_size.
  int tp = 1;
  std::string tp_plan = "auto";  // "auto" (Transformers' plan for the architecture) or a JSON file
  bool expert_parallel = false;  // MoE models, tp_plan auto: whole experts per rank (base_model_ep_plan)
  LaunchEnv launch;
  // How long a rank waits for the others (the next step included) before it declares the group
  // dead; the leader keeps idle followers waiting with Engine::keep_alive.
  std::chrono::milliseconds comm_timeout = CommOptions{}.timeout;
};

}  // namespace shardlm
