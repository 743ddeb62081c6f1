// Allocation of one GPU's buffers; sizes follow the model's dimensions and the rows per forward.
#include "backend/cuda/gpu_workspace.h"

#include <algorithm>

#include "ops/cuda/attention.h"
#include "ops/cuda/flash_attention.h"

namespace shardlm::cuda {

GpuWorkspace::GpuWorkspace(int device_index, const ModelConfig& config, const LayerShape& widest,
                           const RopeFrequencies& rope, int rows_per_forward, int logit_rows, int split_states,
                           const KvCacheShape& kv)
    : device(device_index), max_rows(rows_per_forward), kv_shape(kv) {
  CUDA_CHECK(cudaSetDevice(device));
  CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  CUDA_CHECK(cudaEventCreateWithFlags(&handoff, cudaEventDisableTiming));
  gemm = std::make_unique<CublasLtGemm>();
  inv_freq = DeviceBuffer(rope.inv_freq.size() * sizeof(float));
  CUDA_CHECK(cudaMemcpy(inv_freq.get(), rope.inv_freq.data(), inv_freq.bytes(), cudaMemcpyHostToDevice));

  const size_t rows = size_t(max_rows);
  const Strides s = strides_of(config, widest);
  const size_t dim = size_t(s.dim), q_dim = size_t(s.q_dim), qkv_dim = size_t(s.qkv_dim);
  // The dense MLP and Qwen2-MoE's shared expert use the same gate/up buffers.
  const size_t ff_dim = size_t(std::max(s.ff_dim, widest.experts.shared_ff));
  inputs = DeviceBuffer(input_bytes(max_rows, logit_rows));
  residual = DeviceBuffer(rows * dim * sizeof(float));
  normed = DeviceBuffer(rows * dim * sizeof(__nv_bfloat16));
  qkv = DeviceBuffer(rows * qkv_dim * sizeof(__nv_bfloat16));
  q = DeviceBuffer(rows * q_dim * sizeof(__nv_bfloat16));
  attention_out = DeviceBuffer(rows * q_dim * sizeof(__nv_bfloat16));
  projected = DeviceBuffer(rows * dim * sizeof(__nv_bfloat16));
  gate_up = DeviceBuffer(rows * 2 * ff_dim * sizeof(__nv_bfloat16));
  activated = DeviceBuffer(rows * ff_dim * sizeof(__nv_bfloat16));
  // Logit rows: one per sequence at most in any forward (its last prompt row, or its decode row).
  selected = DeviceBuffer(size_t(logit_rows) * dim * sizeof(__nv_bfloat16));
  logits = DeviceBuffer(size_t(logit_rows) * size_t(config.vocab_size) * sizeof(float));
  sampled = DeviceBuffer(size_t(logit_rows) * sizeof(int32_t));
  attention_partial = DeviceBuffer(size_t(split_states) * size_t(attention_state_floats(config.head_dim)) * sizeof(float));
  attention_split_counters = DeviceBuffer(rows * size_t(widest.n_heads) * sizeof(int));
  CUDA_CHECK(cudaMemset(attention_split_counters.get(), 0, attention_split_counters.bytes()));
  if (prefill_attention_supports(config.head_dim))
    prefill_partial = DeviceBuffer(size_t(prefill_attention_max_partial_floats(config.head_dim)) * sizeof(float));
  if (const ExpertShape& experts = widest.experts; experts.n_experts > 0) {
    const size_t pairs = rows * size_t(experts.top_k);
    router_logits = DeviceBuffer(rows * size_t(experts.n_experts) * sizeof(float));
    route_experts = DeviceBuffer(pairs * sizeof(int32_t));
    route_weights = DeviceBuffer(pairs * sizeof(float));
    moe_out = DeviceBuffer(rows * dim * sizeof(float));
    if (experts.expert_ff > 0) {  // some layer's experts run here
      expert_offsets = DeviceBuffer((size_t(experts.n_experts) + 1) * sizeof(int32_t));
      expert_pairs = DeviceBuffer(pairs * sizeof(int32_t));
      expert_active = DeviceBuffer(size_t(experts.n_experts) * sizeof(int32_t));
      expert_activated = DeviceBuffer(pairs * size_t(experts.expert_ff) * sizeof(__nv_bfloat16));
      expert_out = DeviceBuffer(pairs * dim * sizeof(float));
      expert_rows = DeviceBuffer(pairs * dim * sizeof(__nv_bfloat16));
      expert_gate_up = DeviceBuffer(pairs * 2 * size_t(experts.expert_ff) * sizeof(__nv_bfloat16));
      expert_positions = DeviceBuffer(pairs * sizeof(int32_t));
      grouped_experts = std::make_unique<ExpertGroupedGemm>(experts.n_experts);
    }
    if (experts.on_host) {
      host_expert_rows = PinnedBuffer(rows * dim * sizeof(__nv_bfloat16));
      host_expert_choices = PinnedBuffer(pairs * sizeof(int32_t));
      host_expert_weights = PinnedBuffer(pairs * sizeof(float));
      host_expert_out = PinnedBuffer(rows * dim * sizeof(float));
    }
  }
  kv_tables = DeviceBuffer(size_t(kv.sequences) * size_t(kv.blocks_per_sequence()) * sizeof(int32_t));
  CUDA_CHECK(cudaMemset(kv_tables.get(), 0, kv_tables.bytes()));
}

GpuWorkspace::~GpuWorkspace() {
  cudaSetDevice(device);
  if (stream) cudaStreamSynchronize(stream);
  grouped_experts.reset();  // its cuBLAS handle is bound to the stream
  if (handoff) cudaEventDestroy(handoff);
  if (stream) cudaStreamDestroy(stream);
}

}  // namespace shardlm::cuda
