// A Llama-family causal LM on NVIDIA GPUs in bf16: weights uploaded once (f32/f16 checkpoints are
// narrowed to bf16), a preallocated KV cache with one slot per sequence, GEMMs through cuBLASLt,
// fused kernels for the rest, sampling on the device, and CUDA graphs for decode steps. Same
// packed-row interface as the CPU LlamaModel.
//
// With a device map (CudaModelOptions::placement) each unit (embedding, decoder layer, head) lives
// where the map puts it: layers on a GPU run there, and the residual stream is handed from GPU to
// GPU at each boundary; layers on cpu or disk are offloaded and run as --offload-exec says (see
// plan/device_map/offload_policy.h): streamed through two slots on the offload GPU, or
// computed by the CPU backend with only activations crossing. That side of the model, placing the
// units and walking them in a step, is cuda_llama_model_placement.cpp.
#pragma once

#include <cuda_bf16.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <tuple>
#include <vector>

#include "core/cuda/device_buffer.h"
#include "core/cuda/device_communicator.h"
#include "backend/cuda/gpu_workspace.h"
#include "ops/cuda/qkv_rope.h"
#include "backend/cuda/offload_kv_sync.h"
#include "backend/cuda/offload_streamer.h"
#include "io/model_config.h"
#include "io/safetensors.h"
#include "model/llama_model.h"
#include "model/rope_frequencies.h"
#include "plan/device_map/offload_policy.h"
#include "plan/device_map/planner.h"
#include "plan/tp_plan.h"
#include "ops/sampler.h"

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

struct LoadReport {
  double seconds = 0;
  double bytes = 0;  // bytes read from the checkpoint
};

// What the offloaded units cost and how the steps ran them.
struct OffloadReport {
  OffloadSpeeds speeds;  // zero bytes: nothing offloaded
  OffloadExec exec = OffloadExec::AUTO;
  int64_t stream_steps = 0, cpu_steps = 0;
  int overlapped_tail_units = 0;  // offloaded units a CPU step leaves to the GPU (auto)
  double cpu_step_bytes = 0;      // offloaded weights a CPU step reads on the host (all but the tail)
  // Host compute time of the CPU steps of one row (decode at batch 1), for its achieved bandwidth:
  // in all, and the fastest (what the CPU does while the host's other tenants are quiet).
  double cpu_one_row_seconds = 0;
  double cpu_one_row_seconds_fastest = 0;
  int64_t cpu_one_row_steps = 0;
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
  const OffloadReport& offload_report() const { return offload_report_; }
  int64_t max_seq_len() const { return max_seq_len_; }
  int max_sequences() const { return options_.max_sequences; }

  // Runs the rows (TokenRow::sequence is the KV slot), then picks one token for every row that
  // wants logits. Decode-shaped calls (every row wants logits, at most max_sequences rows) replay
  // a CUDA graph captured on first use, unless something is offloaded.
  std::vector<int32_t> forward_sample(std::span<const TokenRow> rows, const SamplingParams& sampling);
  // The logits (f32, on the host) of the rows that want them; for tests and tools.
  std::vector<float> forward_logits(std::span<const TokenRow> rows);
  // Device memory in use now on every GPU the model uses (cudaMemGetInfo), in bytes.
  size_t device_memory_used() const;

 private:
  // A resident or streamed layer's weights on its GPU, in the fused layout of weight_blocks.h.
  struct LayerWeights {
    __nv_bfloat16* attn_norm = nullptr;  // (dim)
    __nv_bfloat16* qkv = nullptr;        // (q_dim + 2 kv_dim, dim): rows of q_proj, then k_proj, then v_proj
    __nv_bfloat16* qkv_bias = nullptr;   // (q_dim + 2 kv_dim) or nullptr
    __nv_bfloat16* q_norm = nullptr;     // (head_dim) or nullptr
    __nv_bfloat16* k_norm = nullptr;     // (head_dim) or nullptr
    __nv_bfloat16* o_proj = nullptr;     // (dim, q_dim)
    __nv_bfloat16* mlp_norm = nullptr;   // (dim)
    __nv_bfloat16* gate_up = nullptr;    // (2 ff_dim, dim): rows of gate_proj, then up_proj
    __nv_bfloat16* down = nullptr;       // (dim, ff_dim)
  };

  struct HeadWeights {
    __nv_bfloat16* final_norm = nullptr;
    __nv_bfloat16* lm_head = nullptr;
  };
  // Which of a layer's projections a tensor-parallel rank sums over the group (rowwise).
  struct LayerCollectives {
    bool o_proj_partial = false;
    bool down_partial = false;
  };
  struct LayerCache {
    __nv_bfloat16* keys = nullptr;  // (slots, max_seq_len, kv_dim) of this layer
    __nv_bfloat16* values = nullptr;
  };
  // A chunk that is one run of consecutive positions of one sequence (a prompt), which the
  // tensor-core prefill attention handles.
  struct ContiguousRun {
    int slot;
    int first_position;
  };
  struct StepShape {
    int n_rows = 0, n_logit_rows = 0, n_splits = 1;
    std::optional<ContiguousRun> run;
    bool gemv = false;  // decode-shaped: every linear layer is a GEMV with the norm or residual add folded in
  };
  static constexpr int kOnHost = -1;  // where the hidden states are when the CPU runs a unit

  // The checkpoint's views (a tensor-parallel rank's slices), every name and shape checked against
  // the config; sets the dimensions of this model's layers from them.
  LlamaWeights bind_checkpoint(const Checkpoint& checkpoint);
  void place_units();
  void allocate();
  void upload(const LlamaWeights& host);
  void keep_offloaded_units(const LlamaWeights& host);
  // Under auto: which trailing offloaded units a CPU step leaves to the GPU (sets cpu_layers_,
  // gpu_tail_begin_, head_in_gpu_tail_).
  void choose_gpu_tail(std::span<const double> unit_bytes);
  void fill_random(uint64_t seed);
  void check_rows(std::span<const TokenRow> rows) const;
  StepShape stage_rows(std::span<const TokenRow> rows, bool decode_shaped);
  void run_step(std::span<const TokenRow> rows, const StepShape& shape);
  void run_gpu_layer(GpuWorkspace& gpu, const LayerWeights& layer, const LayerCollectives& collectives,
                     const LayerCache& cache, const StepShape& shape);
  void run_gpu_head(GpuWorkspace& gpu, const HeadWeights& head, const StepShape& shape);
  // Where a layer's bias, q/k norm, RoPE and KV-cache store take q/k/v from and put them.
  QkvRopeParams rope_params(GpuWorkspace& gpu, const LayerWeights& layer, const LayerCache& cache, int n_rows) const;
  // Attention of the step's rows over the layer's cache (q rotated, the rows' k/v stored) into attention_out.
  void attend(GpuWorkspace& gpu, const LayerCache& cache, const StepShape& shape);
  // Decode: residual += input · weightᵀ (weight (hidden_size, k)); a rowwise (partial) projection
  // goes through partial_out and is all-reduced first.
  void add_decode_projection(GpuWorkspace& gpu, const __nv_bfloat16* input, const __nv_bfloat16* weight, int64_t k,
                             bool partial, __nv_bfloat16* partial_out, int n_rows);
  // Completes a rowwise (partial) projection output of n_rows rows and adds it to the residual.
  void reduce_and_fold(GpuWorkspace& gpu, __nv_bfloat16* partial, int n_rows, bool fold);
  // Logits of this rank's vocabulary block into local_logits_, gathered into gpu.logits.
  void gather_head_logits(GpuWorkspace& gpu, int n_rows);
  // Moves the hidden states of n_rows rows to `to` (a GPU index or kOnHost).
  void move_hidden(int from, int to, int n_rows);
  void sample(const StepShape& shape, const SamplingParams& sampling);
  std::vector<int32_t> read_tokens(int n_logit_rows);
  void capture_decode_graph(std::span<const TokenRow> rows, const StepShape& shape, const SamplingParams& sampling,
                            cudaGraphExec_t* exec);

  bool offloads() const { return !offloaded_layers_.empty() || head_gpu_ == kOnHost; }
  GpuWorkspace& sampling_gpu() { return *gpus_[size_t(head_gpu_ == kOnHost ? offload_gpu_ : head_gpu_)]; }
  GpuWorkspace& first_gpu() { return *gpus_[size_t(embed_gpu_ == kOnHost ? offload_gpu_ : embed_gpu_)]; }

  ModelConfig config_;
  // The dimensions this model's layers have: config_ itself, or a tensor-parallel rank's heads
  // and intermediate size.
  ModelConfig layer_config_;
  CudaModelOptions options_;
  DeviceCommunicator* comm_ = nullptr;  // with tensor parallelism
  int64_t embed_rows_ = 0, head_rows_ = 0;  // rows of the embedding table and LM head held here
  int64_t embed_vocab_begin_ = 0;           // token id of the first row held here
  bool embed_partial_ = false;              // vocabulary-parallel: rows of other ranks' tokens are zero here
  int64_t head_gather_block_ = 0;           // logits per rank in the all-gather of a split head; 0: whole head
  std::vector<LayerCollectives> layer_collectives_;  // [il]
  DeviceBuffer local_logits_, gathered_logits_;
  int64_t max_seq_len_ = 0;
  RopeFrequencies rope_;
  LoadReport load_report_;
  OffloadReport offload_report_;

  // Placement, as indices into gpus_ (kOnHost: on cpu or disk).
  std::vector<int> gpu_devices_;  // the CUDA device of each workspace, by ascending cuda:N
  std::vector<std::unique_ptr<GpuWorkspace>> gpus_;
  int embed_gpu_ = 0, head_gpu_ = 0, offload_gpu_ = 0;
  std::vector<int> layer_gpu_;
  std::vector<int> offloaded_layers_;  // ascending
  // Under auto, a CPU step leaves the offloaded layers from gpu_tail_begin_ on (and the head, when
  // head_in_gpu_tail_) to the offload GPU, streamed while the CPU computes cpu_layers_ (the rest).
  std::vector<int> cpu_layers_;
  int gpu_tail_begin_ = 0;
  bool head_in_gpu_tail_ = false;
  bool head_on_disk_ = false;
  std::vector<bool> layer_on_disk_;

  std::vector<LayerWeights> layers_;   // resident layers' device pointers (null for offloaded ones)
  std::vector<LayerCache> layer_caches_;
  __nv_bfloat16* embed_tokens_ = nullptr;
  HeadWeights head_;                   // when the head is on a GPU

  // Offloaded units: pinned bf16 blocks (cpu) or readers of the mapped file (disk), a streamer
  // into the offload GPU, and the CPU backend over the same weights.
  std::shared_ptr<const Checkpoint> checkpoint_;
  std::vector<PinnedBuffer> pinned_blocks_;
  std::vector<OffloadBlock> layer_blocks_;  // [il]; used for offloaded layers
  OffloadBlock head_block_;
  std::unique_ptr<OffloadStreamer> streamer_;
  std::unique_ptr<OffloadPolicy> policy_;
  std::unique_ptr<LlamaModel> cpu_model_;
  std::vector<KvCache> cpu_caches_;
  std::vector<KvCache*> cpu_cache_pointers_;
  std::unique_ptr<OffloadKvSync> kv_sync_;
  std::vector<float> host_hidden_;
  PinnedBuffer pinned_hidden_;
  std::vector<float> host_logits_;

  PinnedBuffer host_inputs_;
  PinnedBuffer host_tokens_;
  std::map<std::tuple<int, float, int, float, uint64_t>, cudaGraphExec_t> decode_graphs_;
};

}  // namespace shardlm::cuda
