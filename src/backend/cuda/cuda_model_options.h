// How a CudaLlamaModel is set up: its GPU or device map, its KV-cache slots and rows per forward,
// how offloaded units run, and its tensor-parallel group.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "core/cuda/device_communicator.h"
#include "plan/device_map/offload_policy.h"
#include "plan/device_map/planner.h"
#include "plan/tp_plan.h"

namespace shardlm::cuda {

// This model as one rank of a tensor-parallel group: it holds its slices of the weights (as the
// plan says, read straight from the checkpoint) and completes rowwise projections, a
// vocabulary-parallel embedding and a split LM head with the communicator's collectives. Every rank
// ends a step with the full logits and samples the same tokens.
struct CudaTensorParallel {
  const TpPlan* plan = nullptr;
  DeviceCommunicator* comm = nullptr;  // its rank is this model's rank
};

struct CudaModelOptions {
  int device = 0;            // the GPU of every unit when there is no placement
  int max_sequences = 1;     // KV-cache slots: sequences generated together
  int64_t max_seq_len = 0;   // tokens per sequence; 0: the model's max_position_embeddings, capped at 4096
  // The paged KV cache: blocks of kv_block_size positions. 0 blocks: every slot owns max_seq_len
  // positions from the start (its table fixed); otherwise the tables come from update_kv_blocks.
  int kv_num_blocks = 0;
  int kv_block_size = 16;
  // Above 0 (one GPU): instead of kv_num_blocks, as many blocks as fit once the process uses this
  // share of the GPU's memory.
  double kv_memory_fraction = 0;
  int max_rows = 512;        // rows per forward pass; longer prefills are chunked
  // A device map; needs the checkpoint constructor when it offloads anything.
  std::optional<LayerPlacement> placement;
  OffloadExec offload_exec = OffloadExec::AUTO;
  // Host-to-device and CPU read speeds (and CPU threads) to decide with, instead of measuring them
  // at load (about a second); the offloaded byte counts are always the model's own.
  std::optional<OffloadSpeeds> offload_speeds;
  // Tensor parallelism on `device` (not with a placement); needs the checkpoint constructor.
  std::optional<CudaTensorParallel> tensor_parallel;
  // The CUDA device that each cuda:N of the placement runs on; empty: device N. Entries may repeat:
  // each cuda:N still gets its own workspace, stream, KV caches and hand-offs, so one GPU can run
  // the code of a map over several (tests, on machines with one GPU).
  std::vector<int> cuda_devices;
};

}  // namespace shardlm::cuda
