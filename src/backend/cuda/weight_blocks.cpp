#include "backend/cuda/weight_blocks.h"

#include <algorithm>
#include <cstring>

#include "core/cuda/cuda_event.h"
#include "core/cuda/device_buffer.h"
#include "ops/cuda/convert.h"
#include "core/error.h"
#include "core/narrow_to_bf16.h"

namespace shardlm::cuda {

using bf16 = __nv_bfloat16;

LayerOffsets layer_offsets(const ModelConfig& config, const LayerShape& shape) {
  const Strides s = strides_of(config, shape);
  ArenaLayout layout;
  LayerOffsets o{};
  o.attn_norm = layout.take(s.dim);
  o.qkv = layout.take(s.qkv_dim * s.dim);
  o.qkv_bias = config.attention_bias ? layout.take(s.qkv_dim) : -1;
  o.q_norm = config.qk_norm ? layout.take(config.head_dim) : -1;
  o.k_norm = config.qk_norm ? layout.take(config.head_dim) : -1;
  o.o_proj = layout.take(s.dim * s.q_dim);
  o.mlp_norm = layout.take(s.dim);
  o.gate_up = shape.sparse() ? -1 : layout.take(2 * s.ff_dim * s.dim);
  o.down = shape.sparse() ? -1 : layout.take(s.dim * s.ff_dim);
  const ExpertShape& e = shape.experts;
  o.router = shape.sparse() ? layout.take(int64_t(e.n_experts) * s.dim) : -1;
  const bool experts_here = shape.sparse() && !e.on_host;
  o.experts_gate_up = experts_here ? layout.take(int64_t(e.local_experts) * 2 * e.expert_ff * s.dim) : -1;
  o.experts_down = experts_here ? layout.take(int64_t(e.local_experts) * s.dim * e.expert_ff) : -1;
  o.shared_gate_up = e.shared_ff > 0 ? layout.take(2 * e.shared_ff * s.dim) : -1;
  o.shared_down = e.shared_ff > 0 ? layout.take(s.dim * e.shared_ff) : -1;
  o.shared_gate = e.shared_ff > 0 ? layout.take(s.dim) : -1;
  o.elements = layout.n_elements;
  return o;
}

HeadOffsets head_offsets(const ModelConfig& config) {
  ArenaLayout layout;
  HeadOffsets o{};
  o.final_norm = layout.take(config.hidden_size);
  o.lm_head = layout.take(int64_t(config.vocab_size) * config.hidden_size);
  o.elements = layout.n_elements;
  return o;
}

namespace {

// Where expert k (of those the block holds) has its gate/up rows and its down matrix.
int64_t expert_gate_up_offset(const LayerOffsets& o, const ExpertShape& e, int64_t dim, int k) {
  return o.experts_gate_up + int64_t(k) * 2 * e.expert_ff * dim;
}
int64_t expert_down_offset(const LayerOffsets& o, const ExpertShape& e, int64_t dim, int k) {
  return o.experts_down + int64_t(k) * dim * e.expert_ff;
}

}  // namespace

std::vector<BlockPiece> layer_pieces(const ModelConfig& config, const LlamaLayerWeights& h, bool experts_on_host) {
  LayerShape shape = shape_of(h);
  shape.experts.on_host = experts_on_host;
  const Strides s = strides_of(config, shape);
  const LayerOffsets o = layer_offsets(config, shape);
  std::vector<BlockPiece> pieces = {{h.attn_norm, o.attn_norm},
                                    {h.q_proj.weight, o.qkv},
                                    {h.k_proj.weight, o.qkv + s.q_dim * s.dim},
                                    {h.v_proj.weight, o.qkv + (s.q_dim + s.kv_dim) * s.dim},
                                    {h.o_proj.weight, o.o_proj},
                                    {h.mlp_norm, o.mlp_norm}};
  if (h.moe) {
    const ExpertShape& e = shape.experts;
    pieces.push_back({h.moe->router.weight, o.router});
    for (int k = 0; k < (e.on_host ? 0 : e.local_experts); ++k) {
      const ExpertWeights& expert = h.moe->experts[size_t(e.first_expert + k)];
      const int64_t gate_up = expert_gate_up_offset(o, e, s.dim, k);
      pieces.insert(pieces.end(), {{expert.gate_proj.weight, gate_up},
                                   {expert.up_proj.weight, gate_up + e.expert_ff * s.dim},
                                   {expert.down_proj.weight, expert_down_offset(o, e, s.dim, k)}});
    }
    if (const std::optional<ExpertWeights>& shared = h.moe->shared_expert)
      pieces.insert(pieces.end(), {{shared->gate_proj.weight, o.shared_gate_up},
                                   {shared->up_proj.weight, o.shared_gate_up + e.shared_ff * s.dim},
                                   {shared->down_proj.weight, o.shared_down},
                                   {h.moe->shared_expert_gate.weight, o.shared_gate}});
  } else {
    pieces.insert(pieces.end(), {{h.gate_proj.weight, o.gate_up},
                                 {h.up_proj.weight, o.gate_up + s.ff_dim * s.dim},
                                 {h.down_proj.weight, o.down}});
  }
  if (o.qkv_bias >= 0)
    pieces.insert(pieces.end(), {{h.q_proj.bias, o.qkv_bias}, {h.k_proj.bias, o.qkv_bias + s.q_dim},
                                 {h.v_proj.bias, o.qkv_bias + s.q_dim + s.kv_dim}});
  if (o.q_norm >= 0) pieces.insert(pieces.end(), {{h.q_norm, o.q_norm}, {h.k_norm, o.k_norm}});
  return pieces;
}

std::vector<BlockPiece> head_pieces(const ModelConfig& config, const LlamaWeights& host) {
  const HeadOffsets o = head_offsets(config);
  return {{host.final_norm, o.final_norm}, {host.lm_head.weight, o.lm_head}};
}

LlamaLayerWeights host_layer_views(const ModelConfig& config, int il, const bf16* block) {
  const LayerShape shape = whole_layer_shape(config, il);
  const Strides s = strides_of(config, shape);
  const LayerOffsets o = layer_offsets(config, shape);
  auto view = [block](int64_t offset, int64_t rows, int64_t cols) {
    return offset < 0 ? WeightView{} : WeightView{DType::BF16, block + offset, rows, cols, 0};
  };
  LlamaLayerWeights w;
  w.n_heads = config.num_attention_heads;
  w.n_kv_heads = config.num_key_value_heads;
  w.attn_norm = view(o.attn_norm, 1, s.dim);
  w.q_proj.weight = view(o.qkv, s.q_dim, s.dim);
  w.k_proj.weight = view(o.qkv + s.q_dim * s.dim, s.kv_dim, s.dim);
  w.v_proj.weight = view(o.qkv + (s.q_dim + s.kv_dim) * s.dim, s.kv_dim, s.dim);
  w.q_proj.bias = view(o.qkv_bias, 1, s.q_dim);
  w.k_proj.bias = view(o.qkv_bias < 0 ? -1 : o.qkv_bias + s.q_dim, 1, s.kv_dim);
  w.v_proj.bias = view(o.qkv_bias < 0 ? -1 : o.qkv_bias + s.q_dim + s.kv_dim, 1, s.kv_dim);
  w.q_norm = view(o.q_norm, 1, config.head_dim);
  w.k_norm = view(o.k_norm, 1, config.head_dim);
  w.o_proj.weight = view(o.o_proj, s.dim, s.q_dim);
  w.mlp_norm = view(o.mlp_norm, 1, s.dim);
  w.gate_proj.weight = view(o.gate_up, s.ff_dim, s.dim);
  w.up_proj.weight = view(o.gate_up + s.ff_dim * s.dim, s.ff_dim, s.dim);
  w.down_proj.weight = view(o.down, s.dim, s.ff_dim);
  if (!shape.sparse()) return w;
  const ExpertShape& e = shape.experts;
  SparseMoeWeights& moe = w.moe.emplace();
  moe.router.weight = view(o.router, e.n_experts, s.dim);
  moe.top_k = e.top_k;
  moe.norm_topk_prob = config.moe.norm_topk_prob;
  moe.experts.resize(size_t(e.n_experts));
  for (int k = 0; k < e.n_experts; ++k) {
    ExpertWeights& expert = moe.experts[size_t(k)];
    const int64_t gate_up = expert_gate_up_offset(o, e, s.dim, k);
    expert.gate_proj.weight = view(gate_up, e.expert_ff, s.dim);
    expert.up_proj.weight = view(gate_up + e.expert_ff * s.dim, e.expert_ff, s.dim);
    expert.down_proj.weight = view(expert_down_offset(o, e, s.dim, k), s.dim, e.expert_ff);
  }
  if (e.shared_ff > 0) {
    ExpertWeights& shared = moe.shared_expert.emplace();
    shared.gate_proj.weight = view(o.shared_gate_up, e.shared_ff, s.dim);
    shared.up_proj.weight = view(o.shared_gate_up + e.shared_ff * s.dim, e.shared_ff, s.dim);
    shared.down_proj.weight = view(o.shared_down, s.dim, e.shared_ff);
    moe.shared_expert_gate.weight = view(o.shared_gate, 1, s.dim);
  }
  return w;
}

double source_bytes(const std::vector<BlockPiece>& pieces) {
  double bytes = 0;
  for (const BlockPiece& piece : pieces) bytes += double(piece.source.numel()) * double(dtype_size(piece.source.dtype));
  return bytes;
}

double source_elements(const std::vector<BlockPiece>& pieces) {
  double elements = 0;
  for (const BlockPiece& piece : pieces) elements += double(piece.source.numel());
  return elements;
}

void narrow_block(const std::vector<BlockPiece>& pieces, bf16* block) {
  for (const BlockPiece& piece : pieces) narrow_to_bf16(piece.source, reinterpret_cast<uint16_t*>(block + piece.offset));
}

void upload_pieces(const std::vector<UploadPiece>& pieces, cudaStream_t stream, ProgressBar& progress) {
  constexpr size_t kChunkBytes = size_t(64) << 20;
  PinnedBuffer pinned[2] = {PinnedBuffer(kChunkBytes), PinnedBuffer(kChunkBytes)};
  DeviceBuffer device_staging[2] = {DeviceBuffer(kChunkBytes), DeviceBuffer(kChunkBytes)};
  const CudaEvent chunk_done[2] = {CudaEvent(cudaEventDisableTiming), CudaEvent(cudaEventDisableTiming)};
  int buffer = 0;
  for (const UploadPiece& piece : pieces) {
    const WeightView& w = piece.source;
    const size_t element_size = dtype_size(w.dtype);
    const size_t row_bytes = size_t(w.cols) * element_size;
    // Chunks are whole rows, so a strided view (a tensor-parallel rank's column slice) is packed
    // row by row; a contiguous view is one long row.
    const bool strided = w.stride() != w.cols;
    if (strided && row_bytes > kChunkBytes) fail("upload: a {}-byte row does not fit the staging buffer", row_bytes);
    const int64_t rows = strided ? w.rows : 1;
    const size_t unit_bytes = strided ? row_bytes : size_t(w.numel()) * element_size;
    const int64_t unit_elements = strided ? w.cols : w.numel();
    const int64_t units_per_chunk = std::max<int64_t>(1, int64_t(kChunkBytes / unit_bytes));
    const int64_t chunk_elements = int64_t(kChunkBytes / element_size);
    for (int64_t first_row = 0; first_row < rows; first_row += units_per_chunk) {
      const int64_t n_rows = std::min(units_per_chunk, rows - first_row);
      for (int64_t first = 0; first < n_rows * unit_elements; first += chunk_elements) {
        const int64_t count = std::min(chunk_elements, n_rows * unit_elements - first);
        const size_t bytes = size_t(count) * element_size;
        CUDA_CHECK(cudaEventSynchronize(chunk_done[buffer].get()));
        char* staging = pinned[buffer].get<char>();
        const char* base = static_cast<const char*>(w.data);
        if (strided) {
          for (int64_t row = 0; row < n_rows; ++row)
            std::memcpy(staging + size_t(row) * row_bytes,
                        base + size_t((first_row + row) * w.stride()) * element_size, row_bytes);
        } else {
          const char* source = base + size_t(first) * element_size;
          // Page-cache reads are the bottleneck on the host side; several threads keep up with PCIe.
#pragma omp parallel for schedule(static)
          for (int64_t block = 0; block < int64_t((bytes + (1 << 20) - 1) >> 20); ++block) {
            const size_t offset = size_t(block) << 20;
            std::memcpy(staging + offset, source + offset, std::min<size_t>(size_t(1) << 20, bytes - offset));
          }
        }
        bf16* destination = piece.destination + first_row * unit_elements + first;
        if (w.dtype == DType::BF16) {
          CUDA_CHECK(cudaMemcpyAsync(destination, staging, bytes, cudaMemcpyHostToDevice, stream));
        } else {
          CUDA_CHECK(cudaMemcpyAsync(device_staging[buffer].get(), staging, bytes, cudaMemcpyHostToDevice, stream));
          launch_convert_to_bf16(device_staging[buffer].get(),
                                 w.dtype == DType::F32 ? SourceDtype::F32 : SourceDtype::F16, count, destination, stream);
        }
        CUDA_CHECK(cudaEventRecord(chunk_done[buffer].get(), stream));
        progress.advance(int64_t(bytes));
        buffer ^= 1;
      }
    }
  }
  CUDA_CHECK(cudaStreamSynchronize(stream));
}

}  // namespace shardlm::cuda
