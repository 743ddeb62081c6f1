// A Llama-family causal LM on one NVIDIA GPU in bf16: weights uploaded once (f32/f16 checkpoints
// are narrowed to bf16 on the device), a preallocated KV cache with one slot per sequence, GEMMs
// through cuBLASLt, fused kernels for the rest, sampling on the device, and CUDA graphs for decode
// steps. Same packed-row interface as the CPU LlamaModel.
#pragma once

#include <cuda_bf16.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <tuple>
#include <vector>

#include "backend/cuda/cublaslt_gemm.h"
#include "backend/cuda/device_buffer.h"
#include "io/model_config.h"
#include "io/safetensors.h"
#include "model/llama_model.h"
#include "model/rope_frequencies.h"
#include "runtime/sampler.h"

namespace shardlm::cuda {

struct CudaModelOptions {
  int device = 0;
  int max_sequences = 1;     // KV-cache slots: sequences generated together
  int64_t max_seq_len = 0;   // tokens per sequence; 0: the model's max_position_embeddings, capped at 4096
  int max_rows = 512;        // rows per forward pass; longer prefills are chunked
};

struct LoadReport {
  double seconds = 0;
  double bytes = 0;  // bytes read from the checkpoint
};

class CudaLlamaModel {
 public:
  // Uploads the checkpoint's weights.
  CudaLlamaModel(const ModelConfig& config, const Checkpoint& checkpoint, const CudaModelOptions& options);
  // Random bf16 weights (benchmark shapes): no checkpoint is read.
  CudaLlamaModel(const ModelConfig& config, uint64_t seed, const CudaModelOptions& options);
  ~CudaLlamaModel();
  CudaLlamaModel(const CudaLlamaModel&) = delete;
  CudaLlamaModel& operator=(const CudaLlamaModel&) = delete;

  const ModelConfig& config() const { return config_; }
  const LoadReport& load_report() const { return load_report_; }
  int64_t max_seq_len() const { return max_seq_len_; }
  int max_sequences() const { return options_.max_sequences; }

  // Runs the rows (TokenRow::sequence is the KV slot), then picks one token for every row that
  // wants logits. Decode-shaped calls (every row wants logits, at most max_sequences rows) replay
  // a CUDA graph captured on first use.
  std::vector<int32_t> forward_sample(std::span<const TokenRow> rows, const SamplingParams& sampling);
  // The logits (f32, on the host) of the rows that want them; for tests and tools.
  std::vector<float> forward_logits(std::span<const TokenRow> rows);
  // Peak device memory in use so far (cudaMemGetInfo), in bytes.
  size_t device_memory_used() const;

 private:
  struct LayerWeights;
  void allocate(const ModelConfig& config);
  void upload(const Checkpoint& checkpoint);
  void fill_random(uint64_t seed);
  int stage_rows(std::span<const TokenRow> rows);
  // A chunk that is one run of consecutive positions of one sequence (a prompt), which the
  // tensor-core prefill attention handles.
  struct ContiguousRun {
    int slot;
    int first_position;
  };
  void run_layers(int n_rows, int n_logit_rows, int n_splits, std::optional<ContiguousRun> run = std::nullopt);
  // Layer il's bias, q/k norm, RoPE and KV-cache store from qkv_, then attention into attention_out_.
  void attend(size_t il, int n_rows, int n_splits, std::optional<ContiguousRun> run);
  // The decode step for at most kGemvMaxRows rows that all want logits: every linear layer is a
  // GEMV that also applies the RMSNorm before it or the residual add after it, so a layer is six
  // kernels. Returns false (running nothing) when a shape does not suit the GEMV.
  bool run_decode_layers(int n_rows, int n_splits);
  // Stages and runs at most max_rows rows (not as a graph); returns how many rows want logits.
  int run_chunk(std::span<const TokenRow> chunk);
  void sample(int n_logit_rows, const SamplingParams& sampling);
  std::vector<int32_t> read_tokens(int n_logit_rows);
  void check_rows(std::span<const TokenRow> rows) const;

  ModelConfig config_;
  CudaModelOptions options_;
  int64_t max_seq_len_ = 0;
  RopeFrequencies rope_;
  LoadReport load_report_;
  cudaStream_t stream_ = nullptr;
  std::unique_ptr<CublasLtGemm> gemm_;

  DeviceBuffer weight_arena_;
  std::vector<LayerWeights> layers_;
  __nv_bfloat16 *embed_tokens_ = nullptr, *final_norm_ = nullptr, *lm_head_ = nullptr;
  DeviceBuffer inv_freq_;

  DeviceBuffer k_cache_, v_cache_;  // (layers, slots, max_seq_len, kv_dim) bf16

  // Per-forward inputs: tokens, positions, slots, logit row index, random stream offsets.
  PinnedBuffer host_inputs_;
  DeviceBuffer device_inputs_;
  PinnedBuffer host_tokens_;
  // Activations, sized for max_rows.
  DeviceBuffer residual_, normed_, qkv_, q_, attention_out_, projected_, gate_up_, activated_, mlp_out_;
  DeviceBuffer selected_, logits_, sampled_, attention_partial_;

  std::map<std::tuple<int, float, int, float, uint64_t>, cudaGraphExec_t> decode_graphs_;
};

}  // namespace shardlm::cuda
