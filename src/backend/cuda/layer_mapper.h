// The device map at run time. It knows where each unit (embedding, decoder layer, head) lives, as
// an index into the model's GPU workspaces or kOnHost (cpu or disk), and keeps what offloaded units
// need: their weights (narrowed once into pinned blocks, or read from the mapped file each time),
// the streamer that copies them into the offload GPU's two slots, the CPU backend over the same
// weights with its KV caches and their sync with the GPU's, and the policy that picks, per step,
// whether offloaded layers are streamed or computed by the CPU (plan/device_map/offload_policy.h).
//
// A step is a walk over the units in order: at each one the mapper says where it runs, hands the
// GPU runner its weights (resident, or the block in a slot) or runs it on the CPU, and moves the
// hidden states whenever the next unit runs elsewhere. The model supplies the GPU runners; what a
// layer computes is written once, in model/decoder_layer.h.
#pragma once

#include <cuda_bf16.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "backend/cuda/cuda_model_options.h"
#include "backend/cuda/gpu_layer.h"
#include "backend/cuda/gpu_workspace.h"
#include "backend/cuda/offload_kv_sync.h"
#include "backend/cuda/offload_streamer.h"
#include "core/cuda/device_buffer.h"
#include "io/model_config.h"
#include "io/safetensors.h"
#include "model/llama_model.h"
#include "model/token_row.h"
#include "plan/device_map/offload_policy.h"
#include "plan/device_map/offload_report.h"

namespace shardlm::cuda {

// How the model runs a unit on a GPU. `streamed` is the unit's block in an offload slot (laid out
// as weight_blocks.h says), or null when the unit is resident on that GPU.
struct GpuUnitRunners {
  std::function<void(GpuWorkspace& gpu)> embed;
  std::function<void(GpuWorkspace& gpu, int il, __nv_bfloat16* streamed)> layer;
  std::function<void(GpuWorkspace& gpu, __nv_bfloat16* streamed)> head;
};

class LayerMapper {
 public:
  static constexpr int kOnHost = -1;

  // Where each unit lives: options.placement, or everything on options.device. Checks that every
  // GPU it names exists.
  LayerMapper(const ModelConfig& config, const CudaModelOptions& options);
  ~LayerMapper();
  LayerMapper(const LayerMapper&) = delete;
  LayerMapper& operator=(const LayerMapper&) = delete;

  // The CUDA device of each workspace the model makes, in order (by ascending cuda:N of the map).
  const std::vector<int>& gpu_devices() const { return gpu_devices_; }
  int embed_gpu() const { return embed_gpu_; }
  int head_gpu() const { return head_gpu_; }
  int layer_gpu(int il) const { return layer_gpu_[size_t(il)]; }
  // Whether workspace g holds layer il's KV cache: its own GPU's, or the offload GPU when offloaded
  // layers may be streamed there.
  bool caches_layer(int il, int g) const;
  // Layers or the head on cpu or disk; a host-side embedding alone is only looked up there.
  bool offloads() const { return !offloaded_layers_.empty() || head_gpu_ == kOnHost; }
  bool holds_host_units() const { return offloads() || embed_gpu_ == kOnHost; }
  // Where a step begins (its inputs' stream) and where its logits end up.
  int first_gpu() const { return embed_gpu_ == kOnHost ? offload_gpu_ : embed_gpu_; }
  int sampling_gpu() const { return head_gpu_ == kOnHost ? offload_gpu_ : head_gpu_; }
  const OffloadReport& report() const { return report_; }

  // Keeps the units on cpu or disk (host: the weights bound from `checkpoint`) and sets up their
  // execution; `layers` says where the layers' GPU caches are.
  void keep_host_units(std::shared_ptr<const Checkpoint> checkpoint, const LlamaWeights& host,
                       std::span<const std::unique_ptr<GpuWorkspace>> gpus, std::span<const GpuLayer> layers,
                       const KvCacheShape& kv);
  // A change to a slot's block table, which the CPU cache follows as the GPUs' do.
  void apply_kv_update(const KvBlockUpdate& update) {
    if (cpu_cache_) cpu_cache_->apply(update);
  }

  // One forward pass over the rows (already staged on every GPU), ending with the logits of the
  // rows that want them on the sampling GPU.
  void run_step(std::span<const TokenRow> rows, std::span<const std::unique_ptr<GpuWorkspace>> gpus,
                const GpuUnitRunners& run);

 private:
  // Under auto: which trailing offloaded units a CPU step leaves to the GPU (sets cpu_layers_,
  // gpu_tail_begin_, head_in_gpu_tail_).
  void choose_gpu_tail(std::span<const double> unit_bytes, std::span<const double> unit_cpu_bytes);
  // Moves the hidden states of n_rows rows from one place to another (a workspace or kOnHost).
  void move_hidden(std::span<const std::unique_ptr<GpuWorkspace>> gpus, int from, int to, int n_rows);
  void record_step(OffloadExec exec, int n_rows, double cpu_seconds);

  ModelConfig config_;  // whole: a device map does not combine with tensor parallelism
  CudaModelOptions options_;
  std::vector<int> gpu_devices_;
  int embed_gpu_ = 0, head_gpu_ = 0, offload_gpu_ = 0;
  std::vector<int> layer_gpu_;
  std::vector<int> offloaded_layers_;  // ascending
  std::vector<bool> layer_on_disk_;
  bool head_on_disk_ = false;
  // Under auto, a CPU step leaves the offloaded layers from gpu_tail_begin_ on (and the head, when
  // head_in_gpu_tail_) to the offload GPU, streamed while the CPU computes cpu_layers_ (the rest).
  std::vector<int> cpu_layers_;
  int gpu_tail_begin_ = 0;
  bool head_in_gpu_tail_ = false;

  std::vector<PinnedBuffer> pinned_blocks_;
  std::vector<OffloadBlock> layer_blocks_;  // [il]; used for offloaded layers
  OffloadBlock head_block_;
  std::unique_ptr<OffloadStreamer> streamer_;
  std::unique_ptr<OffloadPolicy> policy_;
  std::unique_ptr<LlamaModel> cpu_model_;
  std::optional<KvCache> cpu_cache_;  // the layers the CPU may compute
  std::unique_ptr<OffloadKvSync> kv_sync_;
  std::vector<float> host_hidden_, host_logits_;
  PinnedBuffer pinned_hidden_;
  OffloadReport report_;
};

}  // namespace shardlm::cuda
