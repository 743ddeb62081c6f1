// The decoder layer of transformers' modeling_llama.py, written once for every backend:
//   hidden = hidden + o_proj(attention(rope(q_proj(h)), rope(k_proj(h)), v_proj(h)))   h = input_layernorm(hidden)
//   hidden = hidden + down_proj(silu(gate_proj(h)) * up_proj(h))                      h = post_attention_layernorm(hidden)
// and in a mixture-of-experts layer (modeling_mixtral.py, modeling_qwen2_moe.py) the MLP is sparse:
//   hidden = hidden + Σ_{e in top_k(softmax(router(h)))} w_e · expert_e(h)  [+ sigmoid(g·h) · shared_expert(h)]
//
// A backend runs it with its Ops (model/cpu_layer_ops.h, backend/cuda/cuda_layer_ops.h), which hold
// one step's rows and residual stream and provide:
//   rms_norm(weight)                   the residual stream, normalised
//   qkv_rope(normed, layer, il)        q/k/v projections (bias, Qwen3's q/k norms), RoPE; k and v
//                                      stored in layer il's cache; returns the queries
//   attention(queries, layer, il)      causal attention over layer il's cache
//   add_projection(input, linear)      hidden += input · linearᵀ (+ bias); a rowwise linear's partial
//                                      sums are reduced over the tensor-parallel ranks first
//   gate_up_swiglu(normed, layer)      silu(gate_proj(h)) * up_proj(h)
//   route(normed, moe)                 each row's top-k experts and their weights
//   add_experts(normed, routes, moe)   hidden += the weighted experts (and the gated shared expert);
//                                      partial sums are reduced over the ranks first
// An op may fuse with its neighbours where the backend has a kernel for it: on CUDA decode the
// RMSNorm is folded into the next projection's GEMV, the rotation and cache store into the q/k/v
// GEMV's epilogue and the residual add into the projection's; the ops are still called in the
// model's order, so the model is only written here.
#pragma once

namespace shardlm {

template <class Ops>
void attention_block(Ops& ops, const typename Ops::Layer& layer, int il) {
  const auto normed = ops.rms_norm(layer.attn_norm);
  const auto queries = ops.qkv_rope(normed, layer, il);
  const auto attended = ops.attention(queries, layer, il);
  ops.add_projection(attended, layer.o_proj);
}

template <class Ops>
void mlp_block(Ops& ops, const typename Ops::Layer& layer) {
  const auto normed = ops.rms_norm(layer.mlp_norm);
  const auto activated = ops.gate_up_swiglu(normed, layer);
  ops.add_projection(activated, layer.down_proj);
}

template <class Ops>
void sparse_moe_block(Ops& ops, const typename Ops::Layer& layer) {
  const auto normed = ops.rms_norm(layer.mlp_norm);
  const auto routes = ops.route(normed, *layer.moe);
  ops.add_experts(normed, routes, *layer.moe);
}

template <class Ops>
void decoder_layer(Ops& ops, const typename Ops::Layer& layer, int il) {
  attention_block(ops, layer, il);
  if (layer.moe)
    sparse_moe_block(ops, layer);
  else
    mlp_block(ops, layer);
}

}  // namespace shardlm
