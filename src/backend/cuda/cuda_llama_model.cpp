// The GPU forward pass. Per layer, with the residual stream r kept in f32:
//   n = rmsnorm(r += mlp_out of the previous layer)          (fused add + norm)
//   qkv = n · [Wq; Wk; Wv]ᵀ                                    (one GEMM over the fused weight)
//   q, cache ← rope(qknorm(qkv + bias))                        (one kernel)
//   a = attention(q, cache);  p = a · Woᵀ
//   n = rmsnorm(r += p);  a = silu(n · Wgateᵀ) · (n · Wupᵀ) (one GEMV in decode);  mlp_out = a · Wdownᵀ
// Q/K/V and gate/up are fused at upload so a decode step reads each layer's weights in 4 GEMMs.
#include "backend/cuda/cuda_llama_model.h"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstring>

#include "backend/cuda/kernels/attention.h"
#include "backend/cuda/kernels/convert.h"
#include "backend/cuda/kernels/embedding.h"
#include "backend/cuda/kernels/flash_attention.h"
#include "backend/cuda/kernels/gemv.h"
#include "backend/cuda/kernels/qkv_rope.h"
#include "backend/cuda/kernels/rmsnorm.h"
#include "backend/cuda/kernels/sampling.h"
#include "core/error.h"
#include "runtime/progress_bar.h"

namespace shardlm::cuda {

using bf16 = __nv_bfloat16;

struct CudaModelStrides {
  int64_t dim, q_dim, kv_dim, qkv_dim, ff_dim, vocab;
};

struct CudaLlamaModel::LayerWeights {
  bf16* attn_norm = nullptr;  // (dim)
  bf16* qkv = nullptr;        // (q_dim + 2 kv_dim, dim): rows of q_proj, then k_proj, then v_proj
  bf16* qkv_bias = nullptr;   // (q_dim + 2 kv_dim) or nullptr
  bf16* q_norm = nullptr;     // (head_dim) or nullptr
  bf16* k_norm = nullptr;     // (head_dim) or nullptr
  bf16* o_proj = nullptr;     // (dim, q_dim)
  bf16* mlp_norm = nullptr;   // (dim)
  bf16* gate_up = nullptr;    // (2 ff_dim, dim): rows of gate_proj, then up_proj
  bf16* down = nullptr;       // (dim, ff_dim)
};

namespace {

CudaModelStrides strides_of(const ModelConfig& config) {
  const int64_t q_dim = int64_t(config.num_attention_heads) * config.head_dim;
  const int64_t kv_dim = int64_t(config.num_key_value_heads) * config.head_dim;
  return {config.hidden_size, q_dim, kv_dim, q_dim + 2 * kv_dim, config.intermediate_size, config.vocab_size};
}

// Where every weight goes inside the arena, in elements, before the arena exists.
struct ArenaLayout {
  int64_t n_elements = 0;
  int64_t take(int64_t count) {
    const int64_t offset = n_elements;
    n_elements += (count + 127) / 128 * 128;  // 256-byte alignment for every weight
    return offset;
  }
};

constexpr int kInputArrays = 5;  // tokens, positions, slots, logit row index, random stream offsets
// Decode has one row per sequence, so the keys are what spreads attention over the GPU.
constexpr int kMaxAttentionSplits = 32;
constexpr int kKeysPerSplit = 64;
constexpr int kRowHeadsThatFillTheGpu = 264;  // two blocks per multiprocessor on an H100/H200

// Blocks per (row, head) along the keys: only when rows × heads alone cannot fill the GPU.
int attention_splits(int n_rows, int n_heads, int64_t length) {
  if (n_rows * n_heads >= kRowHeadsThatFillTheGpu) return 1;
  return int(std::clamp<int64_t>((length + kKeysPerSplit - 1) / kKeysPerSplit, 1, kMaxAttentionSplits));
}

}  // namespace

CudaLlamaModel::CudaLlamaModel(const ModelConfig& config, const Checkpoint& checkpoint, const CudaModelOptions& options)
    : config_(config), options_(options) {
  allocate(config);
  upload(checkpoint);
}

CudaLlamaModel::CudaLlamaModel(const ModelConfig& config, uint64_t seed, const CudaModelOptions& options)
    : config_(config), options_(options) {
  allocate(config);
  fill_random(seed);
}

CudaLlamaModel::~CudaLlamaModel() {
  for (auto& [key, graph] : decode_graphs_) cudaGraphExecDestroy(graph);
  if (stream_) cudaStreamDestroy(stream_);
}

void CudaLlamaModel::allocate(const ModelConfig& config) {
  if (config.attention_output_bias || config.mlp_bias)
    fail("CUDA backend: o_proj and MLP biases (attention_bias on Llama, mlp_bias) are not supported yet");
  if (config.head_dim % 2 != 0 || config.head_dim > 256)
    fail("CUDA backend: head_dim must be even and at most 256, got {}", config.head_dim);
  if (options_.max_sequences < 1) fail("--batch must be >= 1, got {}", options_.max_sequences);
  if (options_.max_rows < 1) fail("max rows per forward must be >= 1, got {}", options_.max_rows);
  int n_devices = 0;
  CUDA_CHECK(cudaGetDeviceCount(&n_devices));
  if (options_.device < 0 || options_.device >= n_devices)
    fail("--device cuda:{} does not exist ({} CUDA devices visible)", options_.device, n_devices);
  CUDA_CHECK(cudaSetDevice(options_.device));
  CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  gemm_ = std::make_unique<CublasLtGemm>();

  max_seq_len_ = options_.max_seq_len > 0 ? options_.max_seq_len
                                          : std::min<int64_t>(config.max_position_embeddings, 4096);
  if (max_seq_len_ > config.max_position_embeddings)
    fail("--max-seq-len {} exceeds the model's max_position_embeddings {}", max_seq_len_,
         config.max_position_embeddings);

  const CudaModelStrides s = strides_of(config);
  ArenaLayout layout;
  struct LayerOffsets { int64_t attn_norm, qkv, qkv_bias, q_norm, k_norm, o_proj, mlp_norm, gate_up, down; };
  std::vector<LayerOffsets> offsets(size_t(config.num_hidden_layers));
  const int64_t embed_offset = layout.take(s.vocab * s.dim);
  const int64_t final_norm_offset = layout.take(s.dim);
  const int64_t lm_head_offset = config.tie_word_embeddings ? embed_offset : layout.take(s.vocab * s.dim);
  for (LayerOffsets& o : offsets) {
    o.attn_norm = layout.take(s.dim);
    o.qkv = layout.take(s.qkv_dim * s.dim);
    o.qkv_bias = config.attention_bias ? layout.take(s.qkv_dim) : -1;
    o.q_norm = config.qk_norm ? layout.take(config.head_dim) : -1;
    o.k_norm = config.qk_norm ? layout.take(config.head_dim) : -1;
    o.o_proj = layout.take(s.dim * s.q_dim);
    o.mlp_norm = layout.take(s.dim);
    o.gate_up = layout.take(2 * s.ff_dim * s.dim);
    o.down = layout.take(s.dim * s.ff_dim);
  }
  weight_arena_ = DeviceBuffer(size_t(layout.n_elements) * sizeof(bf16));
  bf16* base = weight_arena_.get<bf16>();
  auto at = [base](int64_t offset) { return offset < 0 ? nullptr : base + offset; };
  embed_tokens_ = at(embed_offset);
  final_norm_ = at(final_norm_offset);
  lm_head_ = at(lm_head_offset);
  for (const LayerOffsets& o : offsets)
    layers_.push_back({at(o.attn_norm), at(o.qkv), at(o.qkv_bias), at(o.q_norm), at(o.k_norm), at(o.o_proj),
                       at(o.mlp_norm), at(o.gate_up), at(o.down)});

  rope_ = compute_rope_frequencies(config);
  inv_freq_ = DeviceBuffer(rope_.inv_freq.size() * sizeof(float));
  CUDA_CHECK(cudaMemcpy(inv_freq_.get(), rope_.inv_freq.data(), inv_freq_.bytes(), cudaMemcpyHostToDevice));

  const size_t cache_elements = size_t(config.num_hidden_layers) * options_.max_sequences * max_seq_len_ * s.kv_dim;
  k_cache_ = DeviceBuffer(cache_elements * sizeof(bf16));
  v_cache_ = DeviceBuffer(cache_elements * sizeof(bf16));

  const size_t rows = size_t(options_.max_rows);
  const size_t logit_rows = size_t(std::max(options_.max_sequences, 1));
  host_inputs_ = PinnedBuffer(kInputArrays * rows * sizeof(int32_t));
  device_inputs_ = DeviceBuffer(kInputArrays * rows * sizeof(int32_t));
  host_tokens_ = PinnedBuffer(rows * sizeof(int32_t));
  residual_ = DeviceBuffer(rows * s.dim * sizeof(float));
  normed_ = DeviceBuffer(rows * s.dim * sizeof(bf16));
  qkv_ = DeviceBuffer(rows * s.qkv_dim * sizeof(bf16));
  q_ = DeviceBuffer(rows * s.q_dim * sizeof(bf16));
  attention_out_ = DeviceBuffer(rows * s.q_dim * sizeof(bf16));
  projected_ = DeviceBuffer(rows * s.dim * sizeof(bf16));
  gate_up_ = DeviceBuffer(rows * 2 * s.ff_dim * sizeof(bf16));
  activated_ = DeviceBuffer(rows * s.ff_dim * sizeof(bf16));
  mlp_out_ = DeviceBuffer(rows * s.dim * sizeof(bf16));
  // Logit rows: one per sequence at most in any forward (its last prompt row, or its decode row).
  selected_ = DeviceBuffer(logit_rows * s.dim * sizeof(bf16));
  logits_ = DeviceBuffer(logit_rows * s.vocab * sizeof(float));
  sampled_ = DeviceBuffer(logit_rows * sizeof(int32_t));
  const int split_rows = kRowHeadsThatFillTheGpu;
  attention_partial_ = DeviceBuffer(size_t(attention_partial_floats(split_rows, 1, kMaxAttentionSplits, config.head_dim)) *
                                    sizeof(float));
}

void CudaLlamaModel::fill_random(uint64_t seed) {
  const CudaModelStrides s = strides_of(config_);
  uint64_t stream_id = seed;
  auto matrix = [&](bf16* w, int64_t n) { launch_fill_normal_bf16(w, n, ++stream_id, 0.0f, 0.02f, stream_); };
  auto norm = [&](bf16* w, int64_t n) { launch_fill_normal_bf16(w, n, ++stream_id, 1.0f, 0.0f, stream_); };
  matrix(embed_tokens_, s.vocab * s.dim);
  norm(final_norm_, s.dim);
  if (!config_.tie_word_embeddings) matrix(lm_head_, s.vocab * s.dim);
  for (const LayerWeights& layer : layers_) {
    norm(layer.attn_norm, s.dim);
    matrix(layer.qkv, s.qkv_dim * s.dim);
    if (layer.qkv_bias) matrix(layer.qkv_bias, s.qkv_dim);
    if (layer.q_norm) norm(layer.q_norm, config_.head_dim);
    if (layer.k_norm) norm(layer.k_norm, config_.head_dim);
    matrix(layer.o_proj, s.dim * s.q_dim);
    norm(layer.mlp_norm, s.dim);
    matrix(layer.gate_up, 2 * s.ff_dim * s.dim);
    matrix(layer.down, s.dim * s.ff_dim);
  }
  CUDA_CHECK(cudaStreamSynchronize(stream_));
}

void CudaLlamaModel::upload(const Checkpoint& checkpoint) {
  // The CPU binder checks every name and shape against the config; its views say where to copy from.
  const LlamaWeights host = bind_llama_weights(config_, checkpoint);
  const CudaModelStrides s = strides_of(config_);
  struct Piece { const WeightView* source; bf16* destination; };
  std::vector<Piece> pieces = {{&host.embed_tokens, embed_tokens_}, {&host.final_norm, final_norm_}};
  if (!config_.tie_word_embeddings) pieces.push_back({&host.lm_head, lm_head_});
  for (size_t il = 0; il < layers_.size(); ++il) {
    const LlamaLayerWeights& h = host.layers[il];
    const LayerWeights& d = layers_[il];
    pieces.insert(pieces.end(), {{&h.attn_norm, d.attn_norm},
                                 {&h.q_proj, d.qkv},
                                 {&h.k_proj, d.qkv + s.q_dim * s.dim},
                                 {&h.v_proj, d.qkv + (s.q_dim + s.kv_dim) * s.dim},
                                 {&h.o_proj, d.o_proj},
                                 {&h.mlp_norm, d.mlp_norm},
                                 {&h.gate_proj, d.gate_up},
                                 {&h.up_proj, d.gate_up + s.ff_dim * s.dim},
                                 {&h.down_proj, d.down}});
    if (d.qkv_bias)
      pieces.insert(pieces.end(), {{&h.q_bias, d.qkv_bias},
                                   {&h.k_bias, d.qkv_bias + s.q_dim},
                                   {&h.v_bias, d.qkv_bias + s.q_dim + s.kv_dim}});
    if (d.q_norm) pieces.insert(pieces.end(), {{&h.q_norm, d.q_norm}, {&h.k_norm, d.k_norm}});
  }

  // Two pinned staging buffers: the host copies chunk i+1 out of the mapped file while the DMA
  // engine moves chunk i; non-bf16 chunks land in a device staging buffer and are narrowed there.
  constexpr size_t kChunkBytes = size_t(64) << 20;
  PinnedBuffer pinned[2] = {PinnedBuffer(kChunkBytes), PinnedBuffer(kChunkBytes)};
  DeviceBuffer device_staging[2] = {DeviceBuffer(kChunkBytes), DeviceBuffer(kChunkBytes)};
  cudaEvent_t chunk_done[2];
  for (cudaEvent_t& event : chunk_done) CUDA_CHECK(cudaEventCreateWithFlags(&event, cudaEventDisableTiming));

  double total_bytes = 0;
  for (const Piece& piece : pieces) total_bytes += double(piece.source->numel()) * double(dtype_size(piece.source->dtype));
  ProgressBar progress("loading weights", int64_t(total_bytes));
  const auto start = std::chrono::steady_clock::now();
  int buffer = 0;
  for (const Piece& piece : pieces) {
    const WeightView& w = *piece.source;
    const size_t element_size = dtype_size(w.dtype);
    const int64_t chunk_elements = int64_t(kChunkBytes / element_size);
    for (int64_t first = 0; first < w.numel(); first += chunk_elements) {
      const int64_t count = std::min(chunk_elements, w.numel() - first);
      const size_t bytes = size_t(count) * element_size;
      CUDA_CHECK(cudaEventSynchronize(chunk_done[buffer]));
      const char* source = static_cast<const char*>(w.data) + size_t(first) * element_size;
      char* staging = pinned[buffer].get<char>();
      // Page-cache reads are the bottleneck on the host side; several threads keep up with PCIe.
#pragma omp parallel for schedule(static)
      for (int64_t block = 0; block < int64_t((bytes + (1 << 20) - 1) >> 20); ++block) {
        const size_t offset = size_t(block) << 20;
        std::memcpy(staging + offset, source + offset, std::min<size_t>(size_t(1) << 20, bytes - offset));
      }
      if (w.dtype == DType::BF16) {
        CUDA_CHECK(cudaMemcpyAsync(piece.destination + first, staging, bytes, cudaMemcpyHostToDevice, stream_));
      } else {
        CUDA_CHECK(cudaMemcpyAsync(device_staging[buffer].get(), staging, bytes, cudaMemcpyHostToDevice, stream_));
        launch_convert_to_bf16(device_staging[buffer].get(), w.dtype == DType::F32 ? SourceDtype::F32 : SourceDtype::F16,
                               count, piece.destination + first, stream_);
      }
      CUDA_CHECK(cudaEventRecord(chunk_done[buffer], stream_));
      progress.advance(int64_t(bytes));
      buffer ^= 1;
    }
  }
  CUDA_CHECK(cudaStreamSynchronize(stream_));
  for (cudaEvent_t event : chunk_done) cudaEventDestroy(event);
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
  }
}

int CudaLlamaModel::stage_rows(std::span<const TokenRow> rows) {
  const size_t stride = size_t(options_.max_rows);
  int32_t* host = host_inputs_.get<int32_t>();
  int n_logit_rows = 0;
  for (size_t i = 0; i < rows.size(); ++i) {
    host[i] = rows[i].token;
    host[stride + i] = int32_t(rows[i].position);
    host[2 * stride + i] = rows[i].sequence;
    if (rows[i].wants_logits) {
      host[3 * stride + size_t(n_logit_rows)] = int32_t(i);
      // A distinct random stream per (sequence, position), so sampling never reuses draws.
      host[4 * stride + size_t(n_logit_rows)] = int32_t(rows[i].sequence * max_seq_len_ + rows[i].position);
      ++n_logit_rows;
    }
  }
  if (n_logit_rows > options_.max_sequences)
    fail("{} rows want logits in one forward pass, more than the {} sequences the model was set up for",
         n_logit_rows, options_.max_sequences);
  CUDA_CHECK(cudaMemcpyAsync(device_inputs_.get(), host, host_inputs_.bytes(), cudaMemcpyHostToDevice, stream_));
  return n_logit_rows;
}

void CudaLlamaModel::attend(size_t il, int n_rows, int n_splits, std::optional<ContiguousRun> run) {
  const CudaModelStrides s = strides_of(config_);
  const int32_t* positions = device_inputs_.get<int32_t>() + size_t(options_.max_rows);
  const int32_t* slots = device_inputs_.get<int32_t>() + 2 * size_t(options_.max_rows);
  const size_t layer_cache = size_t(options_.max_sequences) * max_seq_len_ * s.kv_dim;
  const LayerWeights& layer = layers_[il];
  bf16* k_cache = k_cache_.get<bf16>() + il * layer_cache;
  bf16* v_cache = v_cache_.get<bf16>() + il * layer_cache;
  launch_qkv_rope({qkv_.get<bf16>(), layer.qkv_bias, layer.q_norm, layer.k_norm, config_.rms_norm_eps, positions,
                   slots, inv_freq_.get<float>(), rope_.attention_scaling, n_rows, config_.num_attention_heads,
                   config_.num_key_value_heads, config_.head_dim, q_.get<bf16>(), k_cache, v_cache, max_seq_len_},
                  stream_);
  const float scale = 1.0f / std::sqrt(float(config_.head_dim));
  if (run && prefill_attention_supports(config_.head_dim)) {
    const size_t slot_offset = size_t(run->slot) * max_seq_len_ * s.kv_dim;
    launch_prefill_attention({q_.get<bf16>(), k_cache + slot_offset, v_cache + slot_offset, n_rows,
                              run->first_position, config_.num_attention_heads, config_.num_key_value_heads,
                              config_.head_dim, config_.sliding_window.value_or(0), scale, attention_out_.get<bf16>()},
                             stream_);
  } else {
    launch_attention({q_.get<bf16>(), k_cache, v_cache, positions, slots, n_rows, config_.num_attention_heads,
                      config_.num_key_value_heads, config_.head_dim, max_seq_len_, config_.sliding_window.value_or(0),
                      scale, n_splits, attention_partial_.get<float>(), attention_out_.get<bf16>()},
                     stream_);
  }
}

void CudaLlamaModel::run_layers(int n_rows, int n_logit_rows, int n_splits, std::optional<ContiguousRun> run) {
  const CudaModelStrides s = strides_of(config_);
  const int32_t* inputs = device_inputs_.get<int32_t>();
  const size_t stride = size_t(options_.max_rows);
  const int32_t* tokens = inputs;
  const int32_t* logit_rows = inputs + 3 * stride;
  const float eps = config_.rms_norm_eps;

  float* residual = residual_.get<float>();
  bf16* normed = normed_.get<bf16>();
  bf16* mlp_out = mlp_out_.get<bf16>();
  launch_embedding(embed_tokens_, tokens, n_rows, int(s.dim), residual, stream_);
  for (size_t il = 0; il < layers_.size(); ++il) {
    const LayerWeights& layer = layers_[il];
    launch_add_rmsnorm(residual, il == 0 ? nullptr : mlp_out, layer.attn_norm, eps, n_rows, int(s.dim), nullptr,
                       normed, stream_);
    gemm_->linear(normed, n_rows, layer.qkv, s.qkv_dim, s.dim, qkv_.get(), GemmOutput::BF16, stream_);
    attend(il, n_rows, n_splits, run);
    gemm_->linear(attention_out_.get<bf16>(), n_rows, layer.o_proj, s.dim, s.q_dim, projected_.get(), GemmOutput::BF16,
                  stream_);
    launch_add_rmsnorm(residual, projected_.get<bf16>(), layer.mlp_norm, eps, n_rows, int(s.dim), nullptr, normed,
                       stream_);
    gemm_->gate_up_swiglu(normed, n_rows, layer.gate_up, s.ff_dim, s.dim, gate_up_.get<bf16>(), activated_.get<bf16>(),
                          stream_);
    gemm_->linear(activated_.get<bf16>(), n_rows, layer.down, s.dim, s.ff_dim, mlp_out, GemmOutput::BF16, stream_);
  }
  // The last MLP output joins the residual; then only the rows that want logits are normalised.
  launch_add_rmsnorm(residual, mlp_out, final_norm_, eps, n_rows, int(s.dim), nullptr, normed, stream_);
  launch_add_rmsnorm(residual, nullptr, final_norm_, eps, n_logit_rows, int(s.dim), logit_rows, selected_.get<bf16>(),
                     stream_);
  gemm_->linear(selected_.get<bf16>(), n_logit_rows, lm_head_, s.vocab, s.dim, logits_.get(), GemmOutput::F32, stream_);
}

int CudaLlamaModel::run_chunk(std::span<const TokenRow> chunk) {
  const int n_logit_rows = stage_rows(chunk);
  int64_t max_position = 0;
  bool contiguous = true;
  for (size_t i = 0; i < chunk.size(); ++i) {
    max_position = std::max(max_position, chunk[i].position);
    contiguous = contiguous && chunk[i].sequence == chunk[0].sequence && chunk[i].position == chunk[0].position + int64_t(i);
  }
  // Single decode rows gain nothing from the tensor-core tiles; prompt chunks do.
  std::optional<ContiguousRun> run;
  if (contiguous && chunk.size() > 1) run = ContiguousRun{chunk[0].sequence, int(chunk[0].position)};
  run_layers(int(chunk.size()), n_logit_rows,
             attention_splits(int(chunk.size()), config_.num_attention_heads, max_position + 1), run);
  return n_logit_rows;
}

bool CudaLlamaModel::run_decode_layers(int n_rows, int n_splits) {
  const CudaModelStrides s = strides_of(config_);
  if (n_rows > kGemvMaxRows || s.dim % 8 != 0 || s.q_dim % 8 != 0 || s.ff_dim % 8 != 0) return false;
  const int32_t* tokens = device_inputs_.get<int32_t>();
  const float eps = config_.rms_norm_eps;
  float* residual = residual_.get<float>();

  launch_embedding(embed_tokens_, tokens, n_rows, int(s.dim), residual, stream_);
  for (size_t il = 0; il < layers_.size(); ++il) {
    const LayerWeights& layer = layers_[il];
    launch_gemv({residual, layer.attn_norm, eps, n_rows, layer.qkv, s.qkv_dim, s.dim, qkv_.get(), GemvOutput::BF16},
                stream_);
    attend(il, n_rows, n_splits, std::nullopt);
    launch_gemv({attention_out_.get(), nullptr, 0.0f, n_rows, layer.o_proj, s.dim, s.q_dim, residual,
                 GemvOutput::ADD_TO_F32},
                stream_);
    launch_gemv({residual, layer.mlp_norm, eps, n_rows, layer.gate_up, s.ff_dim, s.dim, activated_.get(),
                 GemvOutput::SWIGLU_BF16},
                stream_);
    launch_gemv({activated_.get(), nullptr, 0.0f, n_rows, layer.down, s.dim, s.ff_dim, residual,
                 GemvOutput::ADD_TO_F32},
                stream_);
  }
  launch_gemv({residual, final_norm_, eps, n_rows, lm_head_, s.vocab, s.dim, logits_.get(), GemvOutput::F32}, stream_);
  return true;
}

void CudaLlamaModel::sample(int n_logit_rows, const SamplingParams& sampling) {
  const int32_t* stream_offsets = device_inputs_.get<int32_t>() + 4 * size_t(options_.max_rows);
  launch_sampling({logits_.get<float>(), n_logit_rows, config_.vocab_size, sampling.temperature, sampling.top_k,
                   sampling.top_p, sampling.seed, stream_offsets, sampled_.get<int32_t>()},
                  stream_);
}

std::vector<int32_t> CudaLlamaModel::read_tokens(int n_logit_rows) {
  CUDA_CHECK(cudaMemcpyAsync(host_tokens_.get(), sampled_.get(), size_t(n_logit_rows) * sizeof(int32_t),
                             cudaMemcpyDeviceToHost, stream_));
  CUDA_CHECK(cudaStreamSynchronize(stream_));
  const int32_t* tokens = host_tokens_.get<int32_t>();
  return std::vector<int32_t>(tokens, tokens + n_logit_rows);
}

std::vector<int32_t> CudaLlamaModel::forward_sample(std::span<const TokenRow> rows, const SamplingParams& sampling) {
  validate_sampling_params(sampling);
  check_rows(rows);
  CUDA_CHECK(cudaSetDevice(options_.device));
  const bool decode_shaped = !rows.empty() && int(rows.size()) <= options_.max_sequences &&
                             std::all_of(rows.begin(), rows.end(), [](const TokenRow& r) { return r.wants_logits; });
  if (decode_shaped) {
    const int n_rows = int(rows.size());
    stage_rows(rows);
    const auto key = std::make_tuple(n_rows, sampling.temperature, sampling.top_k, sampling.top_p, sampling.seed);
    const auto found = decode_graphs_.find(key);
    // Splits are sized for the whole cache, since the graph replays at every context length; each
    // block reads its own row's length on the device.
    const int splits = attention_splits(n_rows, config_.num_attention_heads, max_seq_len_);
    if (found == decode_graphs_.end()) {
      // First step of this (rows, sampling) shape: run it eagerly, so that cuBLASLt plans are made
      // and autotuned outside a capture, then capture the same work (capture executes nothing).
      if (!run_decode_layers(n_rows, splits)) run_layers(n_rows, n_rows, splits);
      sample(n_rows, sampling);
      const std::vector<int32_t> tokens = read_tokens(n_rows);
      cudaGraph_t graph = nullptr;
      CUDA_CHECK(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal));
      if (!run_decode_layers(n_rows, splits)) run_layers(n_rows, n_rows, splits);
      sample(n_rows, sampling);
      CUDA_CHECK(cudaStreamEndCapture(stream_, &graph));
      cudaGraphExec_t exec = nullptr;
      CUDA_CHECK(cudaGraphInstantiate(&exec, graph, 0));
      CUDA_CHECK(cudaGraphDestroy(graph));
      decode_graphs_.emplace(key, exec);
      return tokens;
    }
    CUDA_CHECK(cudaGraphLaunch(found->second, stream_));
    return read_tokens(n_rows);
  }

  std::vector<int32_t> tokens;
  for (size_t first = 0; first < rows.size(); first += size_t(options_.max_rows)) {
    const int n_logit_rows = run_chunk(rows.subspan(first, std::min(rows.size() - first, size_t(options_.max_rows))));
    sample(n_logit_rows, sampling);
    const std::vector<int32_t> chunk_tokens = read_tokens(n_logit_rows);
    tokens.insert(tokens.end(), chunk_tokens.begin(), chunk_tokens.end());
  }
  return tokens;
}

std::vector<float> CudaLlamaModel::forward_logits(std::span<const TokenRow> rows) {
  check_rows(rows);
  CUDA_CHECK(cudaSetDevice(options_.device));
  std::vector<float> logits;
  for (size_t first = 0; first < rows.size(); first += size_t(options_.max_rows)) {
    const int n_logit_rows = run_chunk(rows.subspan(first, std::min(rows.size() - first, size_t(options_.max_rows))));
    const size_t count = size_t(n_logit_rows) * size_t(config_.vocab_size);
    const size_t old_size = logits.size();
    logits.resize(old_size + count);
    CUDA_CHECK(cudaMemcpyAsync(logits.data() + old_size, logits_.get(), count * sizeof(float), cudaMemcpyDeviceToHost,
                               stream_));
    CUDA_CHECK(cudaStreamSynchronize(stream_));
  }
  return logits;
}

size_t CudaLlamaModel::device_memory_used() const {
  size_t free_bytes = 0, total_bytes = 0;
  CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
  return total_bytes - free_bytes;
}

}  // namespace shardlm::cuda
