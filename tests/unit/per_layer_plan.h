// A tensor-parallel plan whose layers differ, for the 2-layer llama-gqa-llama3rope-f32 fixture at
// TP=2, shared by the CPU and CUDA rank tests. Every layer follows its own plan entries: layer 0
// splits attention by heads and sums its MLP through an all_reduce entry over
// local_colwise/local_rowwise projections (Transformers 4.5x's "gather"); layer 1 keeps attention
// whole and splits its MLP colwise/rowwise; a vocabulary-parallel embedding and a gathered head.
#pragma once

namespace shardlm {

constexpr const char* kPerLayerPlan = R"({
  "model.embed_tokens": "embedding_rowwise",
  "model.layers.0.self_attn.q_proj": "colwise", "model.layers.0.self_attn.k_proj": "colwise",
  "model.layers.0.self_attn.v_proj": "colwise", "model.layers.0.self_attn.o_proj": "rowwise",
  "model.layers.0.mlp.gate_proj": "local_colwise", "model.layers.0.mlp.up_proj": "local_colwise",
  "model.layers.0.mlp.down_proj": "local_rowwise", "model.layers.0.mlp": "gather",
  "model.layers.1.mlp.gate_proj": "colwise", "model.layers.1.mlp.up_proj": "colwise",
  "model.layers.1.mlp.down_proj": "rowwise",
  "lm_head": "colwise_gather_output"})";

}  // namespace shardlm
