// How the CUDA model lays out a model's weights on the device, and how checkpoint tensors get
// there. Q/K/V are fused into one matrix and gate/up into another, and each decoder layer is one
// contiguous bf16 block (so an offloaded layer is streamed in one copy); the head's block is the
// final norm, then the LM head. Checkpoint tensors are uploaded through pinned double buffers
// (narrowed to bf16 on the device) or narrowed on the host into pinned blocks.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <vector>

#include "backend/cuda/layer_shape.h"
#include "core/weight_view.h"
#include "io/model_config.h"
#include "model/llama_weights.h"
#include "core/progress_bar.h"

namespace shardlm::cuda {

// Where every weight goes inside an arena or block, in elements, before the memory exists.
struct ArenaLayout {
  int64_t n_elements = 0;
  int64_t take(int64_t count) {
    const int64_t offset = n_elements;
    n_elements += (count + 127) / 128 * 128;  // 256-byte alignment for every weight
    return offset;
  }
};

// A layer's weights inside its block (-1: absent). A sparse layer's experts are fused as
// Transformers 5 holds them: experts_gate_up (local experts, 2 expert_ff, dim), each expert's gate
// rows then up rows, and experts_down (local experts, dim, expert_ff); the shared expert's gate/up
// and down like a dense MLP's, and its gate (1, dim).
struct LayerOffsets {
  int64_t attn_norm, qkv, qkv_bias, q_norm, k_norm, o_proj, mlp_norm, gate_up, down;
  int64_t router, experts_gate_up, experts_down, shared_gate_up, shared_down, shared_gate;
  int64_t elements;
};

LayerOffsets layer_offsets(const ModelConfig& config, const LayerShape& shape);

// The head's block: the final norm, then the LM head.
struct HeadOffsets {
  int64_t final_norm, lm_head, elements;
};

HeadOffsets head_offsets(const ModelConfig& config);

// A checkpoint tensor and where it goes, in elements from the start of its block.
struct BlockPiece {
  WeightView source;
  int64_t offset;
};

// A layer's tensors (its shape is theirs) and where each goes in its block; experts kept in cpu
// memory have no place in it.
std::vector<BlockPiece> layer_pieces(const ModelConfig& config, const LlamaLayerWeights& h, bool experts_on_host = false);

std::vector<BlockPiece> head_pieces(const ModelConfig& config, const LlamaWeights& host);

// The CPU backend's views of a whole layer (no tensor parallelism, dense or sparse) kept as a bf16
// block in host memory.
LlamaLayerWeights host_layer_views(const ModelConfig& config, int il, const __nv_bfloat16* block);

double source_bytes(const std::vector<BlockPiece>& pieces);

double source_elements(const std::vector<BlockPiece>& pieces);

void narrow_block(const std::vector<BlockPiece>& pieces, __nv_bfloat16* block);

// A checkpoint tensor and its place on a device.
struct UploadPiece {
  WeightView source;
  __nv_bfloat16* destination;
};

// Two pinned staging buffers: the host copies chunk i+1 out of the mapped file while the DMA engine
// moves chunk i; non-bf16 chunks land in a device staging buffer and are narrowed there.
void upload_pieces(const std::vector<UploadPiece>& pieces, cudaStream_t stream, ProgressBar& progress);

}  // namespace shardlm::cuda
