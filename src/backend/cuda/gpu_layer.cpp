#include "backend/cuda/gpu_layer.h"

namespace shardlm::cuda {

void point_into(__nv_bfloat16* block, const LayerOffsets& lo, GpuLayer& layer) {
  auto at = [block](int64_t offset) { return offset < 0 ? nullptr : block + offset; };
  layer.attn_norm = at(lo.attn_norm);
  layer.qkv = at(lo.qkv);
  layer.qkv_bias = at(lo.qkv_bias);
  layer.q_norm = at(lo.q_norm);
  layer.k_norm = at(lo.k_norm);
  layer.o_proj.weight = at(lo.o_proj);
  layer.mlp_norm = at(lo.mlp_norm);
  layer.gate_up = at(lo.gate_up);
  layer.down_proj.weight = at(lo.down);
  if (!layer.moe) return;
  layer.moe->router = at(lo.router);
  layer.moe->experts_gate_up = at(lo.experts_gate_up);
  layer.moe->experts_down = at(lo.experts_down);
  layer.moe->shared_gate_up = at(lo.shared_gate_up);
  layer.moe->shared_down = at(lo.shared_down);
  layer.moe->shared_gate = at(lo.shared_gate);
}

GpuLayer shaped_layer(const ModelConfig& config, const LayerShape& shape, const SparseMoeWeights* moe) {
  GpuLayer layer;
  layer.shape = shape;
  layer.o_proj.in_features = strides_of(config, shape).q_dim;
  layer.down_proj.in_features = shape.ff_dim;
  if (!shape.sparse()) return layer;
  GpuMoe& sparse = layer.moe.emplace();
  sparse.shape = shape.experts;
  sparse.normalize = moe ? moe->norm_topk_prob : config.moe.norm_topk_prob;
  sparse.experts_partial = moe && moe->experts_partial;
  sparse.shared_partial = moe && moe->shared_expert && moe->shared_expert->down_proj.partial();
  return layer;
}

}  // namespace shardlm::cuda
