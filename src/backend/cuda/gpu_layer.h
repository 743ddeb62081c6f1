// A decoder layer as its GPU runs it: where its weights are (resident, or a streamed block laid
// out as weight_blocks.h says), its heads and widths (a tensor-parallel rank's share), a sparse
// layer's experts, and its KV cache.
#pragma once

#include <cuda_bf16.h>

#include <cstdint>
#include <optional>

#include "backend/cuda/layer_shape.h"
#include "backend/cuda/weight_blocks.h"
#include "io/model_config.h"
#include "model/moe_weights.h"

namespace shardlm::cuda {

// A projection into the residual stream (o_proj, down_proj): weight (hidden_size, in_features).
struct GpuLinear {
  __nv_bfloat16* weight = nullptr;
  int64_t in_features = 0;
  bool partial = false;  // rowwise under tensor parallelism: summed over the ranks before it joins
};

// A sparse layer's MLP: its widths and this rank's experts, and its weights (weight_blocks.h's
// layout).
struct GpuMoe {
  ExpertShape shape;
  bool normalize = true;                        // renormalise the top-k weights (norm_topk_prob)
  __nv_bfloat16* router = nullptr;              // (n_experts, dim)
  __nv_bfloat16* experts_gate_up = nullptr;     // (local_experts, 2 expert_ff, dim)
  __nv_bfloat16* experts_down = nullptr;        // (local_experts, dim, expert_ff)
  __nv_bfloat16* shared_gate_up = nullptr;      // (2 shared_ff, dim), or nullptr without a shared expert
  __nv_bfloat16* shared_down = nullptr;         // (dim, shared_ff)
  __nv_bfloat16* shared_gate = nullptr;         // (dim)
  // shape.on_host: the routed experts as bound from the checkpoint, run by the CPU.
  const SparseMoeWeights* host_experts = nullptr;
  // Under tensor parallelism: the rank's sum over its experts is a partial sum (experts split, or
  // held by different ranks), and so is the shared expert's when its down_proj is split by columns.
  bool experts_partial = false, shared_partial = false;
};

// A layer as its GPU runs it: where its weights are (resident, or a streamed block), its heads and
// widths (a tensor-parallel rank's share) and its KV cache.
struct GpuLayer {
  LayerShape shape;
  __nv_bfloat16* attn_norm = nullptr;  // (dim)
  __nv_bfloat16* qkv = nullptr;        // (q_dim + 2 kv_dim, dim): rows of q_proj, then k_proj, then v_proj
  __nv_bfloat16* qkv_bias = nullptr;   // (q_dim + 2 kv_dim) or nullptr
  __nv_bfloat16* q_norm = nullptr;     // (head_dim) or nullptr
  __nv_bfloat16* k_norm = nullptr;     // (head_dim) or nullptr
  GpuLinear o_proj;                          // in_features q_dim
  __nv_bfloat16* mlp_norm = nullptr;   // (dim)
  __nv_bfloat16* gate_up = nullptr;    // (2 ff_dim, dim): rows of gate_proj, then up_proj
  GpuLinear down_proj;                       // in_features ff_dim
  std::optional<GpuMoe> moe;                 // a sparse layer's MLP, in place of gate_up/down_proj
  __nv_bfloat16* keys = nullptr;             // (blocks, block_size, kv_dim) of this layer
  __nv_bfloat16* values = nullptr;
};

// A layer of this shape, its weights not yet placed; `moe`: the sparse MLP's bound weights, for
// their routing rule and which sums are partial (none: whole, unsplit).
GpuLayer shaped_layer(const ModelConfig& config, const LayerShape& shape, const SparseMoeWeights* moe);

// Points a layer's weights into its block, laid out as layer_offsets says.
void point_into(__nv_bfloat16* block, const LayerOffsets& lo, GpuLayer& layer);

}  // namespace shardlm::cuda
