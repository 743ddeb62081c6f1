// A Llama-family causal LM on NVIDIA GPUs in bf16: weights uploaded once (f32/f16 checkpoints are
// narrowed to bf16), a preallocated KV cache with one slot per sequence, the decoder layer of
// model/decoder_layer.h over CudaLayerOps, sampling on the device, and CUDA graphs for decode
// steps. Same packed-row interface as the CPU LlamaModel.
//
// With a device map (CudaModelOptions::placement) each unit lives where the map puts it, and the
// LayerMapper walks a step over them: layers on a GPU run there, layers on cpu or disk are
// streamed through the offload GPU or computed by the CPU backend, as --offload-exec says.
#pragma once

#include <cuda_bf16.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "backend/cuda/cuda_model_options.h"
#include "backend/cuda/gpu_layer.h"
#include "backend/cuda/gpu_workspace.h"
#include "backend/cuda/layer_mapper.h"
#include "backend/cuda/staged_penalties.h"
#include "backend/cuda/step_shape.h"
#include "core/cuda/device_buffer.h"
#include "io/model_config.h"
#include "io/safetensors.h"
#include "model/kv_block_table.h"
#include "model/llama_weights.h"
#include "model/rope_frequencies.h"
#include "model/token_row.h"
#include "ops/sampler.h"

namespace shardlm::cuda {

struct LoadReport {
  double seconds = 0;
  double bytes = 0;  // bytes read from the checkpoint
};

class CudaLlamaModel {
 public:
  // Uploads the checkpoint's weights (and keeps offloaded units in pinned memory or on disk).
  CudaLlamaModel(const ModelConfig& config, std::shared_ptr<const Checkpoint> checkpoint,
                 const CudaModelOptions& options);
  // Random bf16 weights (benchmark shapes): no checkpoint is read; no offloading.
  CudaLlamaModel(const ModelConfig& config, uint64_t seed, const CudaModelOptions& options);
  ~CudaLlamaModel();
  CudaLlamaModel(const CudaLlamaModel&) = delete;
  CudaLlamaModel& operator=(const CudaLlamaModel&) = delete;

  const ModelConfig& config() const { return config_; }
  const LoadReport& load_report() const { return load_report_; }
  const OffloadReport& offload_report() const { return mapper_->report(); }
  int64_t max_seq_len() const { return max_seq_len_; }
  int max_sequences() const { return options_.max_sequences; }

  // Runs the rows (TokenRow::sequence is the KV slot), then picks one token for every row that
  // wants logits. Decode-shaped calls (every row wants logits, at most max_sequences rows) replay
  // a CUDA graph captured on first use, unless a unit (or a layer's experts) is on the host: a host
  // step cannot be captured.
  // sampling[i]: the settings of the i-th row that wants logits (each sequence its own), and
  // penalties[i] (none, or one per such row) what changes its logits before it is sampled.
  std::vector<int32_t> forward_sample(std::span<const TokenRow> rows, std::span<const SamplingParams> sampling,
                                      std::span<const LogitPenalties> penalties = {});
  // After forward_sample: each returned token's log-probabilities where its settings asked.
  const std::vector<std::optional<SampledLogprobs>>& last_logprobs() const { return logprobs_; }
  // Every row with the same settings.
  std::vector<int32_t> forward_sample(std::span<const TokenRow> rows, const SamplingParams& sampling);
  // The logits (f32, on the host) of the rows that want them; for tests and tools.
  std::vector<float> forward_logits(std::span<const TokenRow> rows);
  // Changes to slots' block tables, copied to the GPUs before the next step.
  void update_kv_blocks(std::span<const KvBlockUpdate> updates);
  const KvCacheShape& kv_shape() const { return kv_tables_->shape(); }
  // Device memory in use now on every GPU the model uses (cudaMemGetInfo), in bytes.
  size_t device_memory_used() const;
  // Summed over this model's GPUs (--cpu-moe; zero without experts in cpu memory).
  HostExpertTimes host_expert_times() const;

 private:
  // The embedding table as this rank holds it: every row, or (vocabulary-parallel) the rows of
  // its range of token ids, zeros elsewhere until the all-reduce.
  struct GpuEmbedding {
    __nv_bfloat16* table = nullptr;
    int64_t rows = 0, vocab_begin = 0;
    bool partial = false;
  };
  // The final norm and LM head; a split head's rows are this rank's block of the vocabulary,
  // gathered in blocks of gather_block logits (0: the whole head).
  struct GpuHead {
    __nv_bfloat16* final_norm = nullptr;
    __nv_bfloat16* lm_head = nullptr;
    int64_t rows = 0, gather_block = 0;
  };

  // The checkpoint's views (a tensor-parallel rank's slices), every name and shape checked against
  // the config; sets each layer's heads, widths and collectives from them.
  LlamaWeights bind_checkpoint(const Checkpoint& checkpoint);
  void allocate();
  // KV blocks that fit once the process uses memory_fraction of the GPU, for these layers' caches.
  int blocks_fitting(double memory_fraction, std::span<const int> cached_layers, const KvCacheShape& kv) const;
  void upload(const LlamaWeights& host);
  void fill_random(uint64_t seed);
  // Leaves the experts of the layers the placement marks experts_in_cpu in the checkpoint, for the
  // CPU to run; their layers' blocks hold the rest.
  void keep_experts_in_cpu(const LlamaWeights& host, const std::shared_ptr<const Checkpoint>& checkpoint);
  void check_rows(std::span<const TokenRow> rows) const;
  // Where the pass starting at rows[first] ends: at most max_rows rows, of which at most
  // max_sequences want logits (the logits buffer's rows; a scored prompt chunk may want many).
  size_t pass_end(std::span<const TokenRow> rows, size_t first) const;
  // Copies the rows' inputs (and, to sample, each logit row's settings and penalties) to every GPU.
  StepShape stage_rows(std::span<const TokenRow> rows, bool decode_shaped, std::span<const SamplingParams> sampling,
                       std::span<const LogitPenalties> penalties);
  // Which rows take which attention kernel (a non-decode-shaped pass), staged beside the inputs.
  void stage_attention(std::span<const TokenRow> rows, StepShape& shape);
  void run_step(std::span<const TokenRow> rows, const StepShape& shape);
  void run_embedding(GpuWorkspace& gpu, const StepShape& shape);
  void run_head(GpuWorkspace& gpu, const GpuHead& head, const StepShape& shape);
  // Logits of this rank's vocabulary block into local_logits_, gathered into gpu.logits.
  void gather_head_logits(GpuWorkspace& gpu, int n_rows);
  void sample(const StepShape& shape);
  std::vector<int32_t> read_tokens(int n_logit_rows);
  // Appends to logprobs_ an entry per sampled row of the pass just run: computed on the host from
  // the row's logits (copied from the device) where its settings ask, else none.
  void read_logprobs(std::span<const int32_t> tokens, std::span<const SamplingParams> sampling);
  void capture_decode_graph(std::span<const TokenRow> rows, const StepShape& shape, cudaGraphExec_t* exec);
  GpuWorkspace& sampling_gpu() { return *gpus_[size_t(mapper_->sampling_gpu())]; }
  GpuWorkspace& first_gpu() { return *gpus_[size_t(mapper_->first_gpu())]; }

  ModelConfig config_;
  CudaModelOptions options_;
  DeviceCommunicator* comm_ = nullptr;  // with tensor parallelism
  int64_t max_seq_len_ = 0;
  RopeFrequencies rope_;
  LoadReport load_report_;

  std::unique_ptr<LayerMapper> mapper_;
  std::vector<std::unique_ptr<GpuWorkspace>> gpus_;  // one per GPU of the map, in mapper_->gpu_devices() order
  GpuEmbedding embedding_;
  // Each layer's shape, collectives, weights and cache; an offloaded layer's weights are null (streamed).
  std::vector<GpuLayer> layers_;
  // Experts kept in cpu memory (the placement's experts_in_cpu), by layer: views into the
  // checkpoint, which is kept open for them.
  std::vector<std::optional<SparseMoeWeights>> host_experts_;
  std::shared_ptr<const Checkpoint> expert_checkpoint_;
  // Fixed once the layers are shaped (allocate()), read at every step: the widest of each width,
  // which the shared buffers and the attention split count are sized by, and whether every layer's
  // widths suit the decode GEMV.
  LayerShape widest_;
  bool gemv_aligned_ = false;
  GpuHead head_;
  DeviceBuffer local_logits_, gathered_logits_;  // a split head's block and the gathered blocks

  std::optional<KvBlockTables> kv_tables_;  // the host's copy of every slot's table
  int dirty_first_slot_ = 0, dirty_end_slot_ = 0;  // slots whose tables changed since the last copy

  PinnedBuffer host_inputs_;
  PinnedBuffer host_tokens_;
  StagedPenalties penalties_;  // the current pass's, on the sampling GPU
  std::map<int, cudaGraphExec_t> decode_graphs_;  // by batch size
  std::vector<std::optional<SampledLogprobs>> logprobs_;
};

}  // namespace shardlm::cuda
