// What one GPU needs to run layers of the model: a stream, cuBLASLt, the RoPE table, a copy of the
// step's inputs, and activation buffers for max_rows rows. A model on one GPU has one; a device map
// has one per GPU it computes on, and hands the residual stream from one to the next.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <memory>

#include "backend/cuda/layer_shape.h"
#include "ops/cuda/cublaslt_gemm.h"
#include "ops/cuda/expert_grouped_gemm.h"
#include "ops/cuda/sampling.h"
#include "core/cuda/device_buffer.h"
#include "io/model_config.h"
#include "plan/device_map/offload_report.h"
#include "model/kv_block_table.h"
#include "model/rope_frequencies.h"
#include "ops/cuda/paged_kv.h"

namespace shardlm::cuda {

// tokens, positions, slots, logit row index, random stream offsets, single rows (attention), then
// the prefill tiles (four arrays' worth: up to max_rows PrefillTiles).
constexpr int kInputArrays = 10;
constexpr int kSingleRowsInput = 5, kPrefillTilesInput = 6;

// A step's inputs travel in one copy: kInputArrays int32 arrays of max_rows, then the sampling
// settings of each row that wants logits (RowSampling, at the offset below).
constexpr size_t input_sampling_offset(int max_rows) {
  return (size_t(kInputArrays) * size_t(max_rows) * sizeof(int32_t) + 15) / 16 * 16;
}
constexpr size_t input_bytes(int max_rows, int logit_rows) {
  return input_sampling_offset(max_rows) + size_t(logit_rows) * sizeof(RowSampling);
}

struct GpuWorkspace {
  // widest: every layer's widths fit (layers may differ under tensor parallelism); split_states:
  // the most (row, head, split) partial attention states a step may leave for merging; kv: the
  // paged cache's shape, whose block tables live here.
  GpuWorkspace(int device, const ModelConfig& config, const LayerShape& widest, const RopeFrequencies& rope,
               int max_rows, int logit_rows, int split_states, const KvCacheShape& kv);
  ~GpuWorkspace();
  GpuWorkspace(const GpuWorkspace&) = delete;
  GpuWorkspace& operator=(const GpuWorkspace&) = delete;

  const int32_t* input(int array) const { return inputs.get<int32_t>() + size_t(array) * size_t(max_rows); }
  PagedKv paged_kv() const { return {kv_tables.get<int32_t>(), kv_shape.blocks_per_sequence(), kv_shape.block_shift()}; }
  const RowSampling* row_sampling() const {
    return reinterpret_cast<const RowSampling*>(static_cast<const char*>(inputs.get()) + input_sampling_offset(max_rows));
  }

  int device;
  int max_rows;
  cudaStream_t stream = nullptr;
  cudaEvent_t handoff = nullptr;  // recorded where the residual stream leaves this GPU
  std::unique_ptr<CublasLtGemm> gemm;
  DeviceBuffer weights;           // the units resident here
  KvCacheShape kv_shape;
  DeviceBuffer k_cache, v_cache;  // (layers cached here, blocks, block_size, kv_dim) bf16
  DeviceBuffer kv_tables;         // (slots, blocks_per_sequence) int32: the host's tables, copied before a step
  DeviceBuffer inv_freq;
  DeviceBuffer inputs;            // input_bytes(max_rows, logit_rows)
  // The residual stream (f32) and the rest of a layer's activations.
  DeviceBuffer residual, normed, qkv, q, attention_out, projected, gate_up, activated;
  DeviceBuffer selected, logits, sampled;
  DeviceBuffer attention_partial, attention_split_counters;  // split attention's states and arrivals
  DeviceBuffer prefill_partial;  // the tensor-core prefill's key splits' states
  // Mixture-of-experts layers (none in a dense model): the router's f32 logits, each row's top-k
  // experts and weights, the (row, slot) pairs grouped by expert (offsets per expert, the pairs,
  // the chosen experts), each pair's expert activations and output, and the rank's summed expert
  // output when it is a partial sum the ranks add up before it joins the residual stream. Prompt
  // passes run the experts as grouped GEMMs (grouped_experts) over the pairs' rows in expert order
  // (expert_rows, which then take the outputs), through expert_gate_up, each pair's place in that
  // order in expert_positions.
  DeviceBuffer router_logits, route_experts, route_weights, expert_offsets, expert_pairs, expert_active;
  DeviceBuffer expert_activated, expert_out, moe_out;
  DeviceBuffer expert_rows, expert_gate_up, expert_positions;
  std::unique_ptr<ExpertGroupedGemm> grouped_experts;
  // Experts kept in cpu memory: the normalised rows and routes copied out, the CPU's sum copied in.
  PinnedBuffer host_expert_rows, host_expert_choices, host_expert_weights, host_expert_out;
  HostExpertTimes host_expert_times;
  // In steps of GEMMs a projection's output (in `projected`) joins the residual stream in the next
  // RMSNorm's kernel, and is pending here until then.
  const __nv_bfloat16* pending_add = nullptr;
};

}  // namespace shardlm::cuda
