#include "backend/cuda/layer_mapper.h"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <numeric>
#include <set>

#include "backend/cpu/read_bandwidth.h"
#include "backend/cuda/copy_bandwidth.h"
#include "backend/cuda/weight_blocks.h"
#include "core/error.h"
#include "ops/cuda/rmsnorm.h"

namespace shardlm::cuda {

using bf16 = __nv_bfloat16;

namespace {

// The CPU's bf16 matrix speed per thread (AVX2 FMA, widening as it reads) that --offload-exec auto
// assumes until it has timed a compute-bound CPU step.
constexpr double kAssumedGflopsPerThread = 20.0;

// The bytes (as stored) and elements of a layer's experts that a row computed on the CPU does not
// read: all but top_k of num_experts; none in a dense layer.
std::pair<double, double> unchosen_experts(const LlamaLayerWeights& layer) {
  if (!layer.moe || layer.moe->num_experts() == 0) return {0.0, 0.0};
  double bytes = 0, elements = 0;
  for (const ExpertWeights& expert : layer.moe->experts)
    for (const Linear* projection : {&expert.gate_proj, &expert.up_proj, &expert.down_proj}) {
      elements += double(projection->weight.numel());
      bytes += double(projection->weight.numel()) * double(dtype_size(projection->weight.dtype));
    }
  const double unchosen = 1.0 - double(layer.moe->top_k) / double(layer.moe->num_experts());
  return {bytes * unchosen, elements * unchosen};
}

}  // namespace

LayerMapper::LayerMapper(const ModelConfig& config, const CudaModelOptions& options)
    : config_(config), options_(options) {
  const int n_layers = config_.num_hidden_layers;
  LayerPlacement placement;
  if (options_.placement) {
    placement = *options_.placement;
    if (int(placement.layers.size()) != n_layers)
      fail("device map places {} layers, but the model has {}", placement.layers.size(), n_layers);
  } else {
    placement.embed = placement.norm = placement.head = DeviceId::cuda(options_.device);
    placement.layers.assign(size_t(n_layers), DeviceId::cuda(options_.device));
  }
  // The GPU that streams offloaded units and takes a host-side embedding's rows: the placement's,
  // else the first GPU the map uses (so a map that uses only cuda:1 leaves cuda:0 alone).
  DeviceId offload_device = placement.offload_gpu.value_or(DeviceId::cuda(options_.device));
  if (!placement.offload_gpu && options_.placement) {
    const auto first_gpu = std::find_if(placement.layers.begin(), placement.layers.end(),
                                        [](const DeviceId& where) { return where.is_gpu(); });
    if (first_gpu != placement.layers.end()) offload_device = *first_gpu;
    else if (placement.embed.is_gpu()) offload_device = placement.embed;
    else if (placement.head.is_gpu()) offload_device = placement.head;
  }
  std::set<int> devices = {offload_device.index};
  for (const DeviceId& where : placement.layers)
    if (where.is_gpu()) devices.insert(where.index);
  for (const DeviceId& where : {placement.embed, placement.head})
    if (where.is_gpu()) devices.insert(where.index);
  int n_devices = 0;
  CUDA_CHECK(cudaGetDeviceCount(&n_devices));
  const std::vector<int>& runs_on = options_.cuda_devices;
  for (int device : devices) {
    if (!runs_on.empty() && (device < 0 || device >= int(runs_on.size())))
      fail("cuda:{} of the placement has no entry in cuda_devices ({} given)", device, runs_on.size());
    const int ordinal = runs_on.empty() ? device : runs_on[size_t(device)];
    const std::string runs_as = ordinal == device ? "" : fmt::format(" (cuda:{} of the placement)", device);
    if (ordinal < 0 || ordinal >= n_devices)
      fail("{} cuda:{}{} does not exist ({} CUDA devices visible)",
           options_.placement ? "--device-map uses" : "--device", ordinal, runs_as, n_devices);
    gpu_devices_.push_back(ordinal);
  }

  const std::vector<int> device_list(devices.begin(), devices.end());
  auto index_of = [&](const DeviceId& where) {
    if (!where.is_gpu()) return kOnHost;
    return int(std::find(device_list.begin(), device_list.end(), where.index) - device_list.begin());
  };
  offload_gpu_ = index_of(offload_device);
  embed_gpu_ = index_of(placement.embed);
  // The final norm is tiny and always goes with the head.
  head_gpu_ = index_of(placement.head);
  head_on_disk_ = placement.head.kind == DeviceKind::DISK;
  for (int il = 0; il < n_layers; ++il) {
    const DeviceId& where = placement.layers[size_t(il)];
    layer_gpu_.push_back(index_of(where));
    layer_on_disk_.push_back(where.kind == DeviceKind::DISK);
    if (!where.is_gpu()) offloaded_layers_.push_back(il);
  }
  report_.exec = options_.offload_exec;
}

LayerMapper::~LayerMapper() = default;

bool LayerMapper::caches_layer(int il, int g) const {
  const int home = layer_gpu_[size_t(il)];
  if (home != kOnHost) return home == g;
  return g == offload_gpu_ && options_.offload_exec != OffloadExec::CPU;
}

void LayerMapper::keep_host_units(std::shared_ptr<const Checkpoint> checkpoint, const LlamaWeights& host,
                                  std::span<const std::unique_ptr<GpuWorkspace>> gpus,
                                  std::span<const GpuLayer> layers, const KvCacheShape& kv) {
  // Offloaded units are whole (a device map does not combine with tensor parallelism).
  const HeadOffsets ho = head_offsets(config_);
  cpu_model_ = std::make_unique<LlamaModel>(config_, std::move(checkpoint));
  LlamaWeights cpu_views = cpu_model_->weights();
  OffloadSpeeds& speeds = report_.speeds;
  pinned_hidden_ = PinnedBuffer(size_t(options_.max_rows) * size_t(config_.hidden_size) * sizeof(float));

  // cpu: narrowed once into pinned memory, which both the DMA engine and the CPU backend read;
  // disk: narrowed from the mapped file into staging each time it is streamed.
  // The offloaded units in execution order, the head last: what streaming copies of each, and what
  // a row computed on the CPU reads.
  std::vector<double> unit_bytes, unit_cpu_bytes;
  auto keep = [&](std::vector<BlockPiece> pieces, int64_t elements, bool on_disk,
                  std::pair<double, double> unread = {}) -> std::pair<OffloadBlock, const bf16*> {
    const double unit_elements = source_elements(pieces);
    unit_bytes.push_back(source_bytes(pieces));
    unit_cpu_bytes.push_back(unit_bytes.back() - unread.first);
    speeds.offloaded_bytes += unit_bytes.back();
    speeds.offloaded_params += unit_elements;
    speeds.cpu_row_bytes += unit_cpu_bytes.back();
    speeds.cpu_row_params += unit_elements - unread.second;
    if (on_disk)
      return {OffloadBlock{nullptr, [pieces = std::move(pieces)](bf16* block) { narrow_block(pieces, block); },
                           size_t(elements)},
              nullptr};
    pinned_blocks_.emplace_back(size_t(elements) * sizeof(bf16));
    bf16* block = pinned_blocks_.back().get<bf16>();
    narrow_block(pieces, block);
    return {OffloadBlock{block, {}, size_t(elements)}, block};
  };
  layer_blocks_.resize(layer_gpu_.size());
  int64_t largest_block = ho.elements * (head_gpu_ == kOnHost ? 1 : 0);  // what the streamer's slots hold
  for (int il : offloaded_layers_) {
    const int64_t elements = layer_offsets(config_, whole_layer_shape(config_, il)).elements;
    largest_block = std::max(largest_block, elements);
    const auto [block, pinned] = keep(layer_pieces(config_, host.layers[size_t(il)]), elements, layer_on_disk_[size_t(il)],
                                      unchosen_experts(host.layers[size_t(il)]));
    layer_blocks_[size_t(il)] = block;
    if (pinned) cpu_views.layers[size_t(il)] = host_layer_views(config_, il, pinned);
  }
  if (head_gpu_ == kOnHost) {
    const auto [block, pinned] = keep(head_pieces(config_, host), ho.elements, head_on_disk_);
    head_block_ = block;
    if (pinned) {
      const int64_t dim = config_.hidden_size;
      cpu_views.final_norm = WeightView{DType::BF16, pinned + ho.final_norm, 1, dim, 0};
      cpu_views.lm_head.weight = WeightView{DType::BF16, pinned + ho.lm_head, config_.vocab_size, dim, 0};
    }
  }
  cpu_model_->use_weights(cpu_views);
  if (!offloads()) return;  // only the embedding is on the host: looked up there

  const OffloadExec exec = options_.offload_exec;
  GpuWorkspace& offload_gpu = *gpus[size_t(offload_gpu_)];
  if (options_.offload_speeds) {
    speeds.host_to_device_gbps = options_.offload_speeds->host_to_device_gbps;
    speeds.cpu_read_gbps = options_.offload_speeds->cpu_read_gbps;
    speeds.cpu_gflops = options_.offload_speeds->cpu_gflops;
  } else {
    speeds.host_to_device_gbps = measure_host_to_device_bandwidth(offload_gpu.device);
    speeds.cpu_read_gbps = cpu::measure_read_bandwidth();
    speeds.cpu_gflops = kAssumedGflopsPerThread * omp_get_max_threads();
  }
  choose_gpu_tail(unit_bytes, unit_cpu_bytes);
  if (exec != OffloadExec::STREAM) {
    // Only these layers ever run on the CPU (f32 caches of every layer would be 1 GB per sequence
    // for Llama-3-8B at 4096 positions).
    cpu_cache_.emplace(cpu_model_->make_cache(kv, cpu_layers_));
  }
  if (exec != OffloadExec::CPU) {
    streamer_ = std::make_unique<OffloadStreamer>(offload_gpu.device, size_t(largest_block));
  }
  if (exec == OffloadExec::AUTO && !cpu_layers_.empty()) {
    std::vector<DeviceLayerCache> caches;
    for (int il : cpu_layers_) caches.push_back({il, layers[size_t(il)].keys, layers[size_t(il)].values});
    kv_sync_ = std::make_unique<OffloadKvSync>(std::move(caches), int64_t(config_.num_key_value_heads) * config_.head_dim, kv,
                                               offload_gpu.device, offload_gpu.stream);
  }
  policy_ = std::make_unique<OffloadPolicy>(exec, speeds);
}

void LayerMapper::choose_gpu_tail(std::span<const double> unit_bytes, std::span<const double> unit_cpu_bytes) {
  cpu_layers_ = offloaded_layers_;
  gpu_tail_begin_ = config_.num_hidden_layers;
  constexpr int kStreamerSlots = 2;
  const bool head_offloaded = head_gpu_ == kOnHost;
  const int tail = options_.offload_exec == OffloadExec::AUTO
                       ? overlapped_tail_units(unit_bytes, unit_cpu_bytes, kStreamerSlots, report_.speeds)
                       : 0;
  size_t first_tail_unit = unit_bytes.size();
  for (int left = tail; left > 0; --left) {
    const size_t unit = first_tail_unit - 1;
    const bool is_head = head_offloaded && unit + 1 == unit_bytes.size();
    // A unit on disk needs the host to read it into staging, which it cannot do while it computes.
    if (is_head ? head_on_disk_ : layer_on_disk_[size_t(offloaded_layers_[unit])]) break;
    if (is_head) {
      head_in_gpu_tail_ = true;
    } else {
      gpu_tail_begin_ = offloaded_layers_[unit];
      cpu_layers_.pop_back();
    }
    first_tail_unit = unit;
    ++report_.overlapped_tail_units;
  }
  report_.cpu_step_bytes =
      std::accumulate(unit_cpu_bytes.begin(), unit_cpu_bytes.begin() + std::ptrdiff_t(first_tail_unit), 0.0);
}

void LayerMapper::move_hidden(std::span<const std::unique_ptr<GpuWorkspace>> gpus, int from, int to, int n_rows) {
  if (from == to) return;
  const size_t count = size_t(n_rows) * size_t(config_.hidden_size);
  float* pinned = pinned_hidden_.get<float>();
  if (from != kOnHost) {
    GpuWorkspace& source = *gpus[size_t(from)];
    CUDA_CHECK(cudaSetDevice(source.device));
    if (source.pending_add)
      launch_add_rmsnorm(source.residual.get<float>(), source.pending_add, nullptr, 0.0f, n_rows, config_.hidden_size,
                         nullptr, nullptr, source.stream);
    source.pending_add = nullptr;
    if (to == kOnHost) {
      CUDA_CHECK(cudaMemcpyAsync(pinned, source.residual.get(), count * sizeof(float), cudaMemcpyDeviceToHost,
                                 source.stream));
      CUDA_CHECK(cudaStreamSynchronize(source.stream));
      host_hidden_.assign(pinned, pinned + count);
      return;
    }
    GpuWorkspace& target = *gpus[size_t(to)];
    // A plain copy between unified addresses, not cudaMemcpyPeerAsync, which a decode graph's
    // capture refuses; with peer access enabled it goes GPU to GPU directly all the same.
    CUDA_CHECK(cudaMemcpyAsync(target.residual.get(), source.residual.get(), count * sizeof(float), cudaMemcpyDefault,
                               source.stream));
    CUDA_CHECK(cudaEventRecord(source.handoff, source.stream));
    CUDA_CHECK(cudaSetDevice(target.device));
    CUDA_CHECK(cudaStreamWaitEvent(target.stream, source.handoff));
    target.pending_add = nullptr;
    return;
  }
  GpuWorkspace& target = *gpus[size_t(to)];
  std::copy_n(host_hidden_.data(), count, pinned);
  CUDA_CHECK(cudaSetDevice(target.device));
  CUDA_CHECK(cudaMemcpyAsync(target.residual.get(), pinned, count * sizeof(float), cudaMemcpyHostToDevice,
                             target.stream));
  CUDA_CHECK(cudaStreamSynchronize(target.stream));  // the pinned buffer is reused by the next hand-off
  target.pending_add = nullptr;
}

void LayerMapper::run_step(std::span<const TokenRow> rows, std::span<const std::unique_ptr<GpuWorkspace>> gpus,
                           const GpuUnitRunners& run) {
  const int n_layers = config_.num_hidden_layers;
  const int n_rows = int(rows.size());
  const OffloadExec exec = offloads() ? policy_->choose(n_rows) : OffloadExec::STREAM;
  // A CPU step computes the offloaded layers on the host, except a tail that the GPU runs from
  // weights copied meanwhile; a stream step runs every offloaded unit on the offload GPU.
  const bool cpu_step = exec == OffloadExec::CPU;
  auto where = [&](int il) {
    if (layer_gpu_[size_t(il)] != kOnHost) return layer_gpu_[size_t(il)];
    return cpu_step && il < gpu_tail_begin_ ? kOnHost : offload_gpu_;
  };
  const bool head_streamed = head_gpu_ == kOnHost && (!cpu_step || head_in_gpu_tail_);
  const KvSide side = cpu_step ? KvSide::CPU : KvSide::GPU;
  if (kv_sync_) kv_sync_->prepare(side, rows, *cpu_cache_);
  if (offloads() && streamer_) {
    std::vector<const OffloadBlock*> blocks;
    for (int il : offloaded_layers_)
      if (where(il) != kOnHost) blocks.push_back(&layer_blocks_[size_t(il)]);
    if (head_streamed) blocks.push_back(&head_block_);
    if (!blocks.empty()) streamer_->begin(std::move(blocks));
  }
  double cpu_seconds = 0;
  auto on_cpu = [&](auto&& work) {
    const auto start = std::chrono::steady_clock::now();
    work();
    cpu_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  auto on_gpu = [&](int g) -> GpuWorkspace& {
    GpuWorkspace& gpu = *gpus[size_t(g)];
    CUDA_CHECK(cudaSetDevice(gpu.device));
    return gpu;
  };
  auto streamed = [&](GpuWorkspace& gpu, auto&& work) {
    work(streamer_->acquire(gpu.stream));
    streamer_->release(gpu.stream);
  };

  int at = embed_gpu_;
  if (embed_gpu_ != kOnHost) {
    GpuWorkspace& gpu = on_gpu(embed_gpu_);
    run.embed(gpu);
    gpu.pending_add = nullptr;
  } else {
    host_hidden_ = cpu_model_->embed_rows(rows);
  }
  for (int il = 0; il < n_layers;) {
    const int target = where(il);
    move_hidden(gpus, at, target, n_rows);
    at = target;
    if (target == kOnHost) {
      int end = il + 1;
      while (end < n_layers && where(end) == kOnHost) ++end;
      on_cpu([&] { cpu_model_->run_layers(rows, *cpu_cache_, host_hidden_, il, end); });
      il = end;
      continue;
    }
    GpuWorkspace& gpu = on_gpu(target);
    if (layer_gpu_[size_t(il)] != kOnHost) run.layer(gpu, il, nullptr);
    else streamed(gpu, [&](bf16* block) { run.layer(gpu, il, block); });
    ++il;
  }

  const int head_at = head_gpu_ != kOnHost ? head_gpu_ : head_streamed ? offload_gpu_ : kOnHost;
  move_hidden(gpus, at, head_at, n_rows);
  if (head_at == kOnHost) {
    on_cpu([&] { host_logits_ = cpu_model_->head_logits(rows, host_hidden_); });
    GpuWorkspace& gpu = on_gpu(sampling_gpu());
    CUDA_CHECK(cudaMemcpyAsync(gpu.logits.get(), host_logits_.data(), host_logits_.size() * sizeof(float),
                               cudaMemcpyHostToDevice, gpu.stream));
  } else if (head_gpu_ != kOnHost) {
    run.head(on_gpu(head_at), nullptr);
  } else {
    GpuWorkspace& gpu = on_gpu(head_at);
    streamed(gpu, [&](bf16* block) { run.head(gpu, block); });
  }

  if (!offloads()) return;
  if (kv_sync_) kv_sync_->written(side, rows, *cpu_cache_);
  record_step(exec, n_rows, cpu_seconds);
}

void LayerMapper::record_step(OffloadExec exec, int n_rows, double cpu_seconds) {
  if (exec != OffloadExec::CPU) {
    ++report_.stream_steps;
    policy_->observe_stream(n_rows);
    return;
  }
  ++report_.cpu_steps;
  if (n_rows == 1) {
    report_.cpu_one_row_seconds += cpu_seconds;
    report_.cpu_one_row_seconds_fastest =
        report_.cpu_one_row_steps == 0 ? cpu_seconds : std::min(report_.cpu_one_row_seconds_fastest, cpu_seconds);
    ++report_.cpu_one_row_steps;
  }
  policy_->observe_cpu(n_rows, cpu_seconds);
}

}  // namespace shardlm::cuda
