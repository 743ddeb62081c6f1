// The CUDA model: binding and uploading the weights, staging each step's rows, and the step itself:
// the embedding, decoder_layer (model/decoder_layer.h) over CudaLayerOps for every layer, the final
// norm and LM head, and sampling, with the LayerMapper deciding where each unit runs. Q/K/V and
// gate/up are fused at upload (weight_blocks.h), so a decode step reads each layer's weights in 4
// GEMVs, and each layer's weights are one contiguous block, so an offloaded layer is one copy.
#include "backend/cuda/cuda_llama_model.h"

#include <algorithm>
#include <chrono>
#include <functional>
#include <limits>
#include <set>
#include <tuple>

#include "backend/cuda/cuda_layer_ops.h"
#include "backend/cuda/device_query.h"
#include "backend/cuda/nvtx_range.h"
#include "backend/cuda/weight_blocks.h"
#include "core/error.h"
#include "core/progress_bar.h"
#include "model/decoder_layer.h"
#include "ops/cuda/attention.h"
#include "ops/cuda/embedding.h"
#include "ops/cuda/expert_mlp.h"
#include "ops/cuda/flash_attention.h"
#include "ops/cuda/gather_logits.h"
#include "ops/cuda/gemv.h"
#include "ops/cuda/rmsnorm.h"
#include "ops/cuda/sampling.h"

namespace shardlm::cuda {

using bf16 = __nv_bfloat16;

namespace {

// Decode has one row per sequence, so the keys are what spreads attention over the GPU: every
// (row, head) is split into key ranges of at least kKeysPerSplit until the blocks fill the GPU once
// (a block's keys are a chain of dependent loads, so a second wave of blocks costs more than longer
// ranges do), as far as the scratch for the splits' states allows. On an H200 (Llama-3-8B, 520
// keys) a batch of 16 rows decoded in 5.79 ms per step with 16 splits (2048 blocks), 5.27 with 4.
// One count serves every layer of a pass, sized by the layer with the most heads (the scratch holds
// its states, so it holds any other layer's).
constexpr int kKeysPerSplit = 16;
constexpr int kResidentAttentionBlocks = 528;  // 4 blocks of 128 threads on each of 132 multiprocessors
constexpr int kSplitStates = 264 * kMaxAttentionSplits;
int attention_splits(int n_rows, int n_heads, int n_kv_heads, int head_dim, int64_t length) {
  const int blocks_per_row = attention_blocks_per_row(n_rows, n_heads, n_kv_heads, head_dim);
  const int64_t most = std::min({int64_t(kMaxAttentionSplits), kSplitStates / (int64_t(n_rows) * n_heads),
                                 kResidentAttentionBlocks / (int64_t(n_rows) * blocks_per_row)});
  return int(std::clamp<int64_t>((length + kKeysPerSplit - 1) / kKeysPerSplit, 1, std::max<int64_t>(most, 1)));
}

}  // namespace

CudaLlamaModel::CudaLlamaModel(const ModelConfig& config, std::shared_ptr<const Checkpoint> checkpoint,
                               const CudaModelOptions& options)
    : config_(config), options_(options) {
  const LlamaWeights host = bind_checkpoint(*checkpoint);
  keep_experts_in_cpu(host, checkpoint);
  mapper_ = std::make_unique<LayerMapper>(config_, options_);
  allocate();
  upload(host);
  if (mapper_->holds_host_units()) mapper_->keep_host_units(std::move(checkpoint), host, gpus_, layers_, kv_shape());
  if (options_.kv_num_blocks == 0) update_kv_blocks(whole_sequence_updates(kv_shape()));
}

CudaLlamaModel::CudaLlamaModel(const ModelConfig& config, uint64_t seed, const CudaModelOptions& options)
    : config_(config), options_(options) {
  if (options_.tensor_parallel)
    fail("random weights cannot be split for tensor parallelism: save the model and pass --model DIR");
  embedding_.rows = head_.rows = config_.vocab_size;
  for (int il = 0; il < config_.num_hidden_layers; ++il)
    layers_.push_back(shaped_layer(config_, whole_layer_shape(config_, il), nullptr));
  mapper_ = std::make_unique<LayerMapper>(config_, options_);
  const bool experts_in_cpu = options_.placement && std::ranges::any_of(options_.placement->experts_in_cpu, std::identity{});
  if (mapper_->holds_host_units() || experts_in_cpu)
    fail("random weights cannot be offloaded to cpu or disk: save the model and pass --model DIR");
  allocate();
  fill_random(seed);
  if (options_.kv_num_blocks == 0) update_kv_blocks(whole_sequence_updates(kv_shape()));
}

LlamaWeights CudaLlamaModel::bind_checkpoint(const Checkpoint& checkpoint) {
  std::optional<TensorParallelRank> rank;
  if (options_.tensor_parallel) {
    if (options_.placement) fail("tensor parallelism and a device map cannot be combined: use --tp or --device-map");
    comm_ = options_.tensor_parallel->comm;
    rank = TensorParallelRank{options_.tensor_parallel->plan, comm_->rank(), nullptr};
  }
  LlamaWeights host = bind_llama_weights(config_, checkpoint, rank ? &*rank : nullptr);
  // Each layer its own heads and widths (its plan entries' split) and collectives.
  layers_.clear();
  for (const LlamaLayerWeights& layer : host.layers) {
    GpuLayer shaped = shaped_layer(config_, shape_of(layer), layer.moe ? &*layer.moe : nullptr);
    shaped.o_proj.partial = layer.o_proj.partial();
    shaped.down_proj.partial = layer.down_proj.partial();
    layers_.push_back(std::move(shaped));
  }
  embedding_.rows = host.embed_tokens.table.rows;
  embedding_.vocab_begin = host.embed_tokens.vocab_begin;
  embedding_.partial = host.embed_tokens.collective == TpCollective::ALL_REDUCE;
  head_.rows = host.lm_head.out_features();
  if (host.lm_head.collective == TpCollective::ALL_GATHER) head_.gather_block = host.lm_head.gather_block;
  return host;
}

void CudaLlamaModel::keep_experts_in_cpu(const LlamaWeights& host, const std::shared_ptr<const Checkpoint>& checkpoint) {
  if (!options_.placement) return;
  const std::vector<bool>& in_cpu = options_.placement->experts_in_cpu;
  host_experts_.resize(layers_.size());  // never again: the layers point into it
  for (size_t il = 0; il < layers_.size() && il < in_cpu.size(); ++il) {
    GpuLayer& layer = layers_[il];
    // A layer placed on cpu or disk keeps its experts with the rest of it, in its offloaded block.
    const bool on_gpu = il < options_.placement->layers.size() && options_.placement->layers[il].is_gpu();
    if (!in_cpu[il] || !layer.moe || !on_gpu) continue;
    host_experts_[il] = *host.layers[il].moe;
    layer.shape.experts.on_host = layer.moe->shape.on_host = true;
    layer.moe->host_experts = &*host_experts_[il];
    expert_checkpoint_ = checkpoint;
  }
}

CudaLlamaModel::~CudaLlamaModel() {
  for (auto& [key, graph] : decode_graphs_) cudaGraphExecDestroy(graph);
}

void CudaLlamaModel::allocate() {
  if (config_.attention_output_bias || config_.mlp_bias)
    fail("CUDA backend: o_proj and MLP biases (attention_bias on Llama, mlp_bias) are not supported yet");
  if (config_.head_dim % 2 != 0 || config_.head_dim > 256)
    fail("CUDA backend: head_dim must be even and at most 256, got {}", config_.head_dim);
  if (options_.max_sequences < 1) fail("--batch must be >= 1, got {}", options_.max_sequences);
  if (options_.max_rows < 1) fail("max rows per forward must be >= 1, got {}", options_.max_rows);
  if (options_.kv_memory_fraction > 0 && options_.placement)
    fail("--gpu-memory-utilization sizes the KV cache of one GPU, not of a device map: give --kv-cache-memory");
  max_seq_len_ = options_.max_seq_len > 0 ? options_.max_seq_len
                                          : std::min<int64_t>(config_.max_position_embeddings, 4096);
  if (max_seq_len_ > config_.max_position_embeddings)
    fail("--max-seq-len {} exceeds the model's max_position_embeddings {}", max_seq_len_,
         config_.max_position_embeddings);
  rope_ = compute_rope_frequencies(config_);

  std::vector<LayerShape> shapes;
  for (const GpuLayer& layer : layers_) shapes.push_back(layer.shape);
  widest_ = widest_shape(shapes);
  gemv_aligned_ = std::all_of(layers_.begin(), layers_.end(), [&](const GpuLayer& layer) {
    const Strides own = strides_of(config_, layer.shape);
    return own.dim % 8 == 0 && own.q_dim % 8 == 0 && own.ff_dim % 8 == 0;
  });
  // The expert kernels read rows 8 bf16 at a time.
  for (const GpuLayer& layer : layers_)
    if (layer.moe && !layer.moe->shape.on_host && (config_.hidden_size % 8 != 0 || layer.moe->shape.expert_ff % 8 != 0))
      fail("CUDA backend: experts need hidden_size and each rank's expert width to be multiples of 8, got {} and {}",
           config_.hidden_size, layer.moe->shape.expert_ff);
  const int64_t dim = config_.hidden_size;
  const int logit_rows = std::max(options_.max_sequences, 1);
  KvCacheShape kv = KvCacheShape::whole_sequences(options_.max_sequences, max_seq_len_, options_.kv_block_size);
  if (options_.kv_num_blocks > 0) kv.num_blocks = options_.kv_num_blocks;
  const std::vector<int>& devices = mapper_->gpu_devices();
  for (int device : devices)
    gpus_.push_back(std::make_unique<GpuWorkspace>(device, config_, widest_, rope_, options_.max_rows,
                                                   logit_rows, kSplitStates, kv));
  // Peer access lets hand-offs between GPUs go over NVLink/PCIe directly instead of through the host.
  for (int a : devices)
    for (int b : devices)
      if (can_access_peer(a, b)) enable_peer_access(a, b);  // false for a workspace's own device

  for (int g = 0; g < int(gpus_.size()); ++g) {
    GpuWorkspace& gpu = *gpus_[size_t(g)];
    CUDA_CHECK(cudaSetDevice(gpu.device));
    ArenaLayout layout;
    const int64_t embed_offset = mapper_->embed_gpu() == g ? layout.take(embedding_.rows * dim) : -1;
    const int64_t final_norm_offset = mapper_->head_gpu() == g ? layout.take(dim) : -1;
    // A tensor-parallel rank's head is its own slice, bound separately from the embedding's.
    const bool head_shares_embedding = config_.tie_word_embeddings && mapper_->embed_gpu() == g && !comm_;
    const int64_t lm_head_offset =
        mapper_->head_gpu() != g ? -1 : head_shares_embedding ? embed_offset : layout.take(head_.rows * dim);
    std::vector<int> resident, cached;
    for (int il = 0; il < config_.num_hidden_layers; ++il) {
      if (mapper_->layer_gpu(il) == g) resident.push_back(il);
      if (mapper_->caches_layer(il, g)) cached.push_back(il);
    }
    std::vector<int64_t> layer_base;
    for (int il : resident) layer_base.push_back(layout.take(layer_offsets(config_, layers_[size_t(il)].shape).elements));
    gpu.weights = DeviceBuffer(size_t(layout.n_elements) * sizeof(bf16));
    bf16* base = gpu.weights.get<bf16>();
    if (embed_offset >= 0) embedding_.table = base + embed_offset;
    if (final_norm_offset >= 0) {
      head_.final_norm = base + final_norm_offset;
      head_.lm_head = base + lm_head_offset;
    }
    for (size_t i = 0; i < resident.size(); ++i) {
      GpuLayer& layer = layers_[size_t(resident[i])];
      point_into(base + layer_base[i], layer_offsets(config_, layer.shape), layer);
    }
    // Each cached layer's (blocks, block_size, kv_dim) keys and values, one after another.
    auto cache_elements = [&](int il) {
      return size_t(kv.num_blocks) * size_t(kv.block_size) * size_t(strides_of(config_, layers_[size_t(il)].shape).kv_dim);
    };
    if (options_.kv_memory_fraction > 0) {
      kv.num_blocks = blocks_fitting(options_.kv_memory_fraction, cached, kv);
      gpu.kv_shape = kv;
    }
    size_t cache_total = 0;
    for (int il : cached) cache_total += cache_elements(il);
    gpu.k_cache = DeviceBuffer(cache_total * sizeof(bf16));
    gpu.v_cache = DeviceBuffer(cache_total * sizeof(bf16));
    size_t cache_offset = 0;
    for (int il : cached) {
      layers_[size_t(il)].keys = gpu.k_cache.get<bf16>() + cache_offset;
      layers_[size_t(il)].values = gpu.v_cache.get<bf16>() + cache_offset;
      cache_offset += cache_elements(il);
    }
  }

  kv_tables_.emplace(kv);
  host_inputs_ = PinnedBuffer(input_bytes(options_.max_rows, logit_rows));
  host_tokens_ = PinnedBuffer(size_t(logit_rows) * sizeof(int32_t));
  if (head_.gather_block > 0) {
    const size_t block_floats = size_t(logit_rows) * size_t(head_.gather_block);
    local_logits_ = DeviceBuffer(block_floats * sizeof(float));
    gathered_logits_ = DeviceBuffer(block_floats * size_t(comm_->size()) * sizeof(float));
  }
}

int CudaLlamaModel::blocks_fitting(double memory_fraction, std::span<const int> cached_layers,
                                   const KvCacheShape& kv) const {
  size_t free_bytes = 0, total_bytes = 0;
  CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
  // What the process may still take, less a reserve for what is allocated later (cuBLASLt's
  // workspaces, CUDA graphs, the NCCL buffers of a communicator).
  constexpr double kLaterAllocations = 512.0 * 1024 * 1024;
  const double allowed = memory_fraction * double(total_bytes) - double(total_bytes - free_bytes) - kLaterAllocations;
  double block_bytes = 0;
  for (int il : cached_layers)
    block_bytes += 2.0 * kv.block_size * double(strides_of(config_, layers_[size_t(il)].shape).kv_dim) * sizeof(bf16);
  const int64_t blocks = block_bytes > 0 ? int64_t(std::max(allowed, 0.0) / block_bytes) : kv.num_blocks;
  if (blocks < kv.blocks_per_sequence())
    fail("--gpu-memory-utilization {}: the weights and buffers leave room for {} KV tokens on cuda:{}, fewer than "
         "one sequence of --max-model-len {} needs (raise the share or lower --max-model-len)",
         memory_fraction, blocks * kv.block_size, options_.device, kv.max_seq_len);
  return int(std::min<int64_t>(blocks, std::numeric_limits<int32_t>::max()));
}

void CudaLlamaModel::upload(const LlamaWeights& host) {
  std::vector<std::vector<UploadPiece>> per_gpu(gpus_.size());
  double total_bytes = 0;
  auto add = [&](int g, const WeightView& source, bf16* destination) {
    per_gpu[size_t(g)].push_back({source, destination});
    total_bytes += double(source.numel()) * double(dtype_size(source.dtype));
  };
  const int embed_gpu = mapper_->embed_gpu(), head_gpu = mapper_->head_gpu();
  if (embed_gpu != LayerMapper::kOnHost) add(embed_gpu, host.embed_tokens.table, embedding_.table);
  if (head_gpu != LayerMapper::kOnHost) {
    add(head_gpu, host.final_norm, head_.final_norm);
    if (head_.lm_head != embedding_.table) add(head_gpu, host.lm_head.weight, head_.lm_head);
  }
  for (size_t il = 0; il < layers_.size(); ++il) {
    const int g = mapper_->layer_gpu(int(il));
    if (g == LayerMapper::kOnHost) continue;
    bf16* block = layers_[il].attn_norm - layer_offsets(config_, layers_[il].shape).attn_norm;
    for (const BlockPiece& piece : layer_pieces(config_, host.layers[il], layers_[il].shape.experts.on_host))
      add(g, piece.source, block + piece.offset);
  }
  ProgressBar progress("loading weights", int64_t(total_bytes));
  const auto start = std::chrono::steady_clock::now();
  for (size_t g = 0; g < gpus_.size(); ++g) {
    CUDA_CHECK(cudaSetDevice(gpus_[g]->device));
    upload_pieces(per_gpu[g], gpus_[g]->stream, progress);
  }
  progress.finish();
  load_report_.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  load_report_.bytes = total_bytes;
}

void CudaLlamaModel::check_rows(std::span<const TokenRow> rows) const {
  for (const TokenRow& row : rows) {
    if (row.token < 0 || row.token >= config_.vocab_size)
      fail("token id {} is outside the vocabulary (vocab_size {})", row.token, config_.vocab_size);
    if (row.sequence < 0 || row.sequence >= options_.max_sequences)
      fail("sequence {} has no KV-cache slot (the model was set up for {} sequences; raise --batch)", row.sequence,
           options_.max_sequences);
    if (row.position < 0 || row.position >= max_seq_len_)
      fail("position {} is beyond the KV cache ({} tokens per sequence; raise --max-seq-len)", row.position,
           max_seq_len_);
    // The kernels read and write through the tables: a position past a slot's blocks would land
    // in another sequence's.
    if (row.position >= kv_tables_->capacity(row.sequence))
      fail("position {} of sequence {} is beyond the {} positions of its KV-cache blocks", row.position,
           row.sequence, kv_tables_->capacity(row.sequence));
  }
}

void CudaLlamaModel::update_kv_blocks(std::span<const KvBlockUpdate> updates) {
  for (const KvBlockUpdate& update : updates) {
    kv_tables_->apply(update);
    mapper_->apply_kv_update(update);
    if (dirty_first_slot_ == dirty_end_slot_) dirty_first_slot_ = dirty_end_slot_ = update.slot;
    dirty_first_slot_ = std::min(dirty_first_slot_, update.slot);
    dirty_end_slot_ = std::max(dirty_end_slot_, update.slot + 1);
  }
}

StepShape CudaLlamaModel::stage_rows(std::span<const TokenRow> rows, bool decode_shaped,
                                     std::span<const SamplingParams> sampling, std::span<const LogitPenalties> penalties) {
  const size_t stride = size_t(options_.max_rows);
  int32_t* host = host_inputs_.get<int32_t>();
  RowSampling* settings = reinterpret_cast<RowSampling*>(host_inputs_.get<char>() + input_sampling_offset(options_.max_rows));
  StepShape shape;
  shape.n_rows = int(rows.size());
  for (size_t i = 0; i < rows.size(); ++i) {
    host[i] = rows[i].token;
    host[stride + i] = int32_t(rows[i].position);
    host[2 * stride + i] = rows[i].sequence;
    if (rows[i].wants_logits) {
      host[3 * stride + size_t(shape.n_logit_rows)] = int32_t(i);
      // A distinct random stream per (sequence, position), so sampling never reuses draws.
      host[4 * stride + size_t(shape.n_logit_rows)] = int32_t(rows[i].sequence * max_seq_len_ + rows[i].position);
      if (!sampling.empty() && shape.n_logit_rows < options_.max_sequences) {
        const SamplingParams& own = sampling[size_t(shape.n_logit_rows)];
        RowSampling& row = settings[shape.n_logit_rows] = RowSampling{};  // penalties are staged below
        std::tie(row.temperature, row.top_k, row.top_p, row.seed, row.min_p) =
            std::tie(own.temperature, own.top_k, own.top_p, own.seed, own.min_p);
      }
      ++shape.n_logit_rows;
    }
  }
  if (shape.n_logit_rows > options_.max_sequences)
    fail("{} rows want logits in one forward pass, more than the {} sequences the model was set up for",
         shape.n_logit_rows, options_.max_sequences);
  if (!sampling.empty()) {
    // Before the inputs below are copied: they carry the settings that point at the tokens.
    GpuWorkspace& sampler = sampling_gpu();
    CUDA_CHECK(cudaSetDevice(sampler.device));
    penalties_.stage(penalties.first(std::min(penalties.size(), size_t(shape.n_logit_rows))),
                     std::span(settings, size_t(shape.n_logit_rows)), sampler.stream);
  }
  if (decode_shaped) {
    // Splits are sized for the whole cache, since a graph replays at every context length; each
    // block reads its own row's length on the device.
    shape.n_splits =
        attention_splits(shape.n_rows, widest_.n_heads, widest_.n_kv_heads, config_.head_dim, max_seq_len_);
    const Strides s = strides_of(config_, widest_);
    shape.gemv = shape.n_rows <= kGemvMaxRows && gemv_aligned_ &&
                 gemv_stages(shape.n_rows, std::max({s.dim, s.q_dim, s.ff_dim}));
  } else {
    stage_attention(rows, shape);
    // Grouped GEMMs once an expert's rows average a pass of the batch kernels (expert_mlp.h): below
    // that those read each chosen expert once anyway, and they need no host sync (a serving step's
    // few prompt rows beside its decodes would otherwise wait for the host in every sparse layer).
    // Set for the kernels before the tiles; not measured again since.
    const MoeConfig& moe = config_.moe;
    shape.grouped_experts = moe.present() && int64_t(shape.n_rows) * moe.num_experts_per_tok >=
                                                 int64_t(kExpertPairsPerPass) * moe.num_experts;
  }
  // Every GPU gets the inputs (and the tables changed since the last step, as one span of slots)
  // on its own stream; the first GPU's stream (where a step and a graph begin) waits for all of them.
  const int per_sequence = kv_shape().blocks_per_sequence();
  const size_t table_offset = size_t(dirty_first_slot_) * size_t(per_sequence);
  const size_t table_bytes = size_t(dirty_end_slot_ - dirty_first_slot_) * size_t(per_sequence) * sizeof(int32_t);
  dirty_first_slot_ = dirty_end_slot_ = 0;
  GpuWorkspace& origin = first_gpu();
  for (const std::unique_ptr<GpuWorkspace>& gpu : gpus_) {
    CUDA_CHECK(cudaSetDevice(gpu->device));
    if (table_bytes > 0)
      CUDA_CHECK(cudaMemcpyAsync(gpu->kv_tables.get<int32_t>() + table_offset, kv_tables_->data() + table_offset,
                                 table_bytes, cudaMemcpyHostToDevice, gpu->stream));
    CUDA_CHECK(cudaMemcpyAsync(gpu->inputs.get(), host, host_inputs_.bytes(), cudaMemcpyHostToDevice, gpu->stream));
    if (gpu.get() == &origin) continue;
    CUDA_CHECK(cudaEventRecord(gpu->handoff, gpu->stream));
    CUDA_CHECK(cudaSetDevice(origin.device));
    CUDA_CHECK(cudaStreamWaitEvent(origin.stream, gpu->handoff));
  }
  return shape;
}

void CudaLlamaModel::stage_attention(std::span<const TokenRow> rows, StepShape& shape) {
  // Runs of several consecutive positions of one sequence (prompt chunks) become tensor-core tiles;
  // single rows (decode rows, which gain nothing from the tiles) go to the split kernel.
  int32_t* host = host_inputs_.get<int32_t>();
  const size_t stride = size_t(options_.max_rows);
  std::vector<PrefillTile> tiles;
  int64_t longest_run_context = 0, longest_single_context = 0;
  int n_singles = 0;
  for (size_t begin = 0; begin < rows.size();) {
    size_t end = begin + 1;
    while (end < rows.size() && rows[end].sequence == rows[begin].sequence &&
           rows[end].position == rows[end - 1].position + 1)
      ++end;
    if (end - begin > 1 && prefill_attention_supports(config_.head_dim)) {
      append_prefill_tiles(tiles, int(begin), int(end - begin), rows[begin].sequence, int(rows[begin].position));
      longest_run_context = std::max(longest_run_context, rows[end - 1].position + 1);
    } else {
      for (size_t i = begin; i < end; ++i) {
        host[size_t(kSingleRowsInput) * stride + size_t(n_singles++)] = int32_t(i);
        longest_single_context = std::max(longest_single_context, rows[i].position + 1);
      }
    }
    begin = end;
  }
  static_assert(sizeof(PrefillTile) == 4 * sizeof(int32_t));
  std::copy(tiles.begin(), tiles.end(), reinterpret_cast<PrefillTile*>(host + size_t(kPrefillTilesInput) * stride));
  shape.n_prefill_tiles = int(tiles.size());
  shape.n_single_rows = n_singles;
  if (!tiles.empty())
    shape.n_key_splits = prefill_attention_key_splits(int(tiles.size()), widest_.n_heads, longest_run_context);
  // Without tiles every row goes to the split kernel, as rows 0..n_rows-1.
  const int split_rows = tiles.empty() ? shape.n_rows : n_singles;
  shape.n_splits = attention_splits(std::max(split_rows, 1), widest_.n_heads, widest_.n_kv_heads, config_.head_dim,
                                    std::max<int64_t>(longest_single_context, 1));
}

void CudaLlamaModel::gather_head_logits(GpuWorkspace& gpu, int n_rows) {
  const size_t block_floats = size_t(n_rows) * size_t(head_.gather_block);
  comm_->all_gather(local_logits_.get(), gathered_logits_.get(), block_floats, DType::F32, gpu.stream);
  launch_gather_logits(gathered_logits_.get<float>(), n_rows, head_.gather_block, config_.vocab_size,
                       gpu.logits.get<float>(), gpu.stream);
}

void CudaLlamaModel::run_step(std::span<const TokenRow> rows, const StepShape& shape) {
  const HeadOffsets ho = head_offsets(config_);
  mapper_->run_step(
      rows, gpus_,
      {[&](GpuWorkspace& gpu) { run_embedding(gpu, shape); },
       [&](GpuWorkspace& gpu, int il, bf16* streamed) {
         CudaLayerOps ops(config_, rope_.attention_scaling, comm_, gpu, shape);
         if (!streamed) return decoder_layer(ops, layers_[size_t(il)], il);
         GpuLayer layer = layers_[size_t(il)];  // its cache and shape; the weights are in the slot
         point_into(streamed, layer_offsets(config_, layer.shape), layer);
         decoder_layer(ops, layer, il);
       },
       [&](GpuWorkspace& gpu, bf16* streamed) {
         if (!streamed) return run_head(gpu, head_, shape);
         GpuHead head = head_;
         head.final_norm = streamed + ho.final_norm;
         head.lm_head = streamed + ho.lm_head;
         run_head(gpu, head, shape);
       }});
}

void CudaLlamaModel::run_embedding(GpuWorkspace& gpu, const StepShape& shape) {
  launch_embedding(embedding_.table, gpu.input(0), shape.n_rows, config_.hidden_size, gpu.residual.get<float>(),
                   gpu.stream, int(embedding_.vocab_begin), int(embedding_.rows));
  if (embedding_.partial)
    comm_->all_reduce_sum(gpu.residual.get(), size_t(shape.n_rows) * size_t(config_.hidden_size), DType::F32,
                          gpu.stream);
}

void CudaLlamaModel::run_head(GpuWorkspace& gpu, const GpuHead& head, const StepShape& shape) {
  const int64_t dim = config_.hidden_size;
  const float eps = config_.rms_norm_eps;
  float* residual = gpu.residual.get<float>();
  // A split head writes this rank's block of the vocabulary, then the blocks are gathered.
  const bool gathered = head.gather_block > 0;
  void* logits = gathered ? local_logits_.get() : gpu.logits.get();
  if (shape.gemv) {
    launch_gemv({residual, head.final_norm, eps, shape.n_rows, head.lm_head, head.rows, dim, logits, GemvOutput::F32},
                gpu.stream);
    if (gathered) gather_head_logits(gpu, shape.n_rows);
    return;
  }
  // The last projection joins the residual; then only the rows that want logits are normalised.
  if (gpu.pending_add)
    launch_add_rmsnorm(residual, gpu.pending_add, nullptr, 0.0f, shape.n_rows, int(dim), nullptr, nullptr, gpu.stream);
  gpu.pending_add = nullptr;
  if (shape.n_logit_rows == 0) return;  // a prompt chunk before the prompt's last row
  launch_add_rmsnorm(residual, nullptr, head.final_norm, eps, shape.n_logit_rows, int(dim), gpu.input(3),
                     gpu.selected.get<bf16>(), gpu.stream);
  gpu.gemm->linear(gpu.selected.get<bf16>(), shape.n_logit_rows, head.lm_head, head.rows, dim, logits,
                   GemmOutput::F32, gpu.stream);
  if (gathered) gather_head_logits(gpu, shape.n_logit_rows);
}

void CudaLlamaModel::sample(const StepShape& shape) {
  GpuWorkspace& gpu = sampling_gpu();
  CUDA_CHECK(cudaSetDevice(gpu.device));
  launch_sampling({gpu.logits.get<float>(), shape.n_logit_rows, config_.vocab_size, gpu.row_sampling(), gpu.input(4),
                   gpu.sampled.get<int32_t>()},
                  gpu.stream);
}

std::vector<int32_t> CudaLlamaModel::read_tokens(int n_logit_rows) {
  GpuWorkspace& gpu = sampling_gpu();
  CUDA_CHECK(cudaSetDevice(gpu.device));
  CUDA_CHECK(cudaMemcpyAsync(host_tokens_.get(), gpu.sampled.get(), size_t(n_logit_rows) * sizeof(int32_t),
                             cudaMemcpyDeviceToHost, gpu.stream));
  CUDA_CHECK(cudaStreamSynchronize(gpu.stream));
  const int32_t* tokens = host_tokens_.get<int32_t>();
  // The sampler marks a row with non-finite logits; the staged inputs of this step (unchanged since
  // stage_rows) say which sequence and position it was.
  static_assert(kNonFiniteLogitsToken == kNonFiniteLogits);
  const int32_t* staged = host_inputs_.get<int32_t>();
  const size_t stride = size_t(options_.max_rows);
  for (int r = 0; r < n_logit_rows; ++r) {
    if (tokens[r] != kNonFiniteLogitsToken) continue;
    const size_t row = size_t(staged[3 * stride + size_t(r)]);
    fail_non_finite_logits(staged[2 * stride + row], staged[stride + row]);
  }
  return std::vector<int32_t>(tokens, tokens + n_logit_rows);
}

void CudaLlamaModel::capture_decode_graph(std::span<const TokenRow> rows, const StepShape& shape,
                                          cudaGraphExec_t* exec) {
  // Capture begins on the first GPU's stream; hand-offs fork the other GPUs' streams into the
  // capture through their events, and every one is joined back before it ends.
  GpuWorkspace& origin = first_gpu();
  CUDA_CHECK(cudaSetDevice(origin.device));
  cudaGraph_t graph = nullptr;
  CUDA_CHECK(cudaStreamBeginCapture(origin.stream, cudaStreamCaptureModeThreadLocal));
  try {
    run_step(rows, shape);
    sample(shape);
    for (const std::unique_ptr<GpuWorkspace>& gpu : gpus_) {
      if (gpu.get() == &origin) continue;
      CUDA_CHECK(cudaSetDevice(gpu->device));
      CUDA_CHECK(cudaEventRecord(gpu->handoff, gpu->stream));
      CUDA_CHECK(cudaSetDevice(origin.device));
      CUDA_CHECK(cudaStreamWaitEvent(origin.stream, gpu->handoff));
    }
  } catch (...) {
    // End the broken capture, so the error reaches the caller instead of every later CUDA call
    // (the buffers' destructors included) failing on a stream that is still capturing.
    cudaSetDevice(origin.device);
    if (cudaStreamEndCapture(origin.stream, &graph) == cudaSuccess && graph) cudaGraphDestroy(graph);
    cudaGetLastError();
    throw;
  }
  CUDA_CHECK(cudaSetDevice(origin.device));
  CUDA_CHECK(cudaStreamEndCapture(origin.stream, &graph));
  CUDA_CHECK(cudaGraphInstantiate(exec, graph, 0));
  CUDA_CHECK(cudaGraphDestroy(graph));
}

namespace {

// A row that scores the prompt's next token returns that token, not the one the sampler drew for it
// (its draw comes from its own (sequence, position) stream, so it disturbs no other).
void take_scored_tokens(std::span<const TokenRow> rows, std::vector<int32_t>& tokens) {
  size_t next = 0;
  for (const TokenRow& row : rows) {
    if (!row.wants_logits) continue;
    if (row.scored_token >= 0) tokens.at(next) = row.scored_token;
    ++next;
  }
}

}  // namespace

size_t CudaLlamaModel::pass_end(std::span<const TokenRow> rows, size_t first) const {
  size_t end = first, logit_rows = 0;
  while (end < rows.size() && end - first < size_t(options_.max_rows)) {
    if (rows[end].wants_logits && logit_rows == size_t(options_.max_sequences)) break;
    logit_rows += rows[end].wants_logits ? 1 : 0;
    ++end;
  }
  return end;
}

std::vector<int32_t> CudaLlamaModel::forward_sample(std::span<const TokenRow> rows, const SamplingParams& sampling) {
  const size_t n_logit_rows = size_t(std::count_if(rows.begin(), rows.end(), [](const TokenRow& r) { return r.wants_logits; }));
  const std::vector<SamplingParams> each(n_logit_rows, sampling);
  return forward_sample(rows, std::span<const SamplingParams>(each));
}

std::vector<int32_t> CudaLlamaModel::forward_sample(std::span<const TokenRow> rows,
                                                    std::span<const SamplingParams> sampling,
                                                    std::span<const LogitPenalties> penalties) {
  check_rows(rows);
  const size_t n_logit_rows = size_t(std::count_if(rows.begin(), rows.end(), [](const TokenRow& r) { return r.wants_logits; }));
  if (sampling.size() != n_logit_rows)
    fail("{} sampling settings for {} rows that want a token", sampling.size(), n_logit_rows);
  check_logit_penalties(penalties, n_logit_rows, config_.vocab_size);
  for (const SamplingParams& params : sampling) validate_sampling_params(params);
  logprobs_.clear();
  // One pass (and one graph) takes a decode step only when its rows fit the workspace; otherwise the
  // rows go through in chunks of max_rows below, as a long prompt does.
  const bool decode_shaped = !rows.empty() && int(rows.size()) <= options_.max_sequences &&
                             int(rows.size()) <= options_.max_rows && n_logit_rows == rows.size();
  if (decode_shaped && !mapper_->holds_host_units() && !widest_.experts.on_host && (!comm_ || comm_->capturable())) {
    // Each row's settings are among the staged inputs, which the graph reads: one graph per batch size.
    const int n_rows = int(rows.size());
    const StepShape shape = stage_rows(rows, true, sampling, penalties);
    const auto found = decode_graphs_.find(n_rows);
    if (found == decode_graphs_.end()) {
      // First step of this batch size: run it eagerly, so that cuBLASLt plans are made (and timed,
      // in a new band of rows) outside a capture, then capture the same work (capture executes nothing).
      run_step(rows, shape);
      sample(shape);
      std::vector<int32_t> tokens = read_tokens(n_rows);
      take_scored_tokens(rows, tokens);
      read_logprobs(tokens, sampling);
      cudaGraphExec_t exec = nullptr;
      capture_decode_graph(rows, shape, &exec);
      decode_graphs_.emplace(n_rows, exec);
      return tokens;
    }
    // Replays only: a batch size's first step ran eagerly above, making (and maybe timing) cuBLASLt's plans.
    const NvtxRange range("decode step");
    GpuWorkspace& origin = first_gpu();
    CUDA_CHECK(cudaSetDevice(origin.device));
    CUDA_CHECK(cudaGraphLaunch(found->second, origin.stream));
    GpuWorkspace& sampler = sampling_gpu();
    if (&sampler != &origin) {
      CUDA_CHECK(cudaEventRecord(origin.handoff, origin.stream));
      CUDA_CHECK(cudaSetDevice(sampler.device));
      CUDA_CHECK(cudaStreamWaitEvent(sampler.stream, origin.handoff));
    }
    std::vector<int32_t> tokens = read_tokens(n_rows);
    take_scored_tokens(rows, tokens);
    read_logprobs(tokens, sampling);
    return tokens;
  }

  std::vector<int32_t> tokens;
  for (size_t first = 0, end = 0; first < rows.size(); first = end) {
    end = pass_end(rows, first);
    const std::span<const TokenRow> chunk = rows.subspan(first, end - first);
    const NvtxRange range("eager pass");
    const StepShape shape = stage_rows(chunk, decode_shaped, sampling.subspan(tokens.size()),
                                       penalties.empty() ? penalties : penalties.subspan(tokens.size()));
    run_step(chunk, shape);
    sample(shape);
    std::vector<int32_t> chunk_tokens = read_tokens(shape.n_logit_rows);
    take_scored_tokens(chunk, chunk_tokens);
    read_logprobs(chunk_tokens, sampling.subspan(tokens.size(), chunk_tokens.size()));
    tokens.insert(tokens.end(), chunk_tokens.begin(), chunk_tokens.end());
  }
  return tokens;
}

void CudaLlamaModel::read_logprobs(std::span<const int32_t> tokens, std::span<const SamplingParams> sampling) {
  const size_t vocab = size_t(config_.vocab_size);
  std::vector<float> logits;
  for (size_t r = 0; r < tokens.size(); ++r) {
    if (sampling[r].logprobs < 0) {
      logprobs_.emplace_back();
      continue;
    }
    // Only the rows that ask cross to the host (a row is 0.5 MB at Llama-3's vocabulary).
    GpuWorkspace& gpu = sampling_gpu();
    CUDA_CHECK(cudaSetDevice(gpu.device));
    logits.resize(vocab);
    CUDA_CHECK(cudaMemcpy(logits.data(), gpu.logits.get<float>() + r * vocab, vocab * sizeof(float),
                          cudaMemcpyDeviceToHost));
    penalties_.restore_raw_logits(r, logits);  // log-probabilities are of the raw logits
    logprobs_.push_back(sampled_logprobs(logits, tokens[r], sampling[r].logprobs));
  }
}

std::vector<float> CudaLlamaModel::forward_logits(std::span<const TokenRow> rows) {
  check_rows(rows);
  std::vector<float> logits;
  for (size_t first = 0, end = 0; first < rows.size(); first = end) {
    end = pass_end(rows, first);
    const std::span<const TokenRow> chunk = rows.subspan(first, end - first);
    const NvtxRange range("eager pass");
    const StepShape shape = stage_rows(chunk, false, {}, {});
    run_step(chunk, shape);
    const size_t count = size_t(shape.n_logit_rows) * size_t(config_.vocab_size);
    const size_t old_size = logits.size();
    logits.resize(old_size + count);
    GpuWorkspace& gpu = sampling_gpu();
    CUDA_CHECK(cudaSetDevice(gpu.device));
    CUDA_CHECK(cudaMemcpyAsync(logits.data() + old_size, gpu.logits.get(), count * sizeof(float),
                               cudaMemcpyDeviceToHost, gpu.stream));
    CUDA_CHECK(cudaStreamSynchronize(gpu.stream));
  }
  return logits;
}

HostExpertTimes CudaLlamaModel::host_expert_times() const {
  HostExpertTimes sum;
  for (const std::unique_ptr<GpuWorkspace>& gpu : gpus_) sum += gpu->host_expert_times;
  return sum;
}

size_t CudaLlamaModel::device_memory_used() const {
  size_t used = 0;
  for (int device : std::set<int>(mapper_->gpu_devices().begin(), mapper_->gpu_devices().end())) {  // workspaces may share one
    CUDA_CHECK(cudaSetDevice(device));
    size_t free_bytes = 0, total_bytes = 0;
    CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
    used += total_bytes - free_bytes;
  }
  return used;
}

}  // namespace shardlm::cuda
