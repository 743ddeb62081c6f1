// Random weights for a --random shape (benchmarks without a checkpoint): every matrix N(0, 0.02),
// every norm 1, filled on the GPU that holds it. Defined apart from the model's loading and
// stepping, which it shares nothing with but the layers' places.
#include "backend/cuda/cuda_llama_model.h"

#include "ops/cuda/convert.h"

namespace shardlm::cuda {

using bf16 = __nv_bfloat16;

void CudaLlamaModel::fill_random(uint64_t seed) {
  const int64_t dim = config_.hidden_size, vocab = config_.vocab_size;  // random weights are never split
  uint64_t stream_id = seed;
  for (int g = 0; g < int(gpus_.size()); ++g) {
    CUDA_CHECK(cudaSetDevice(gpus_[size_t(g)]->device));
    const cudaStream_t stream = gpus_[size_t(g)]->stream;
    auto matrix = [&](bf16* w, int64_t n) { launch_fill_normal_bf16(w, n, ++stream_id, 0.0f, 0.02f, stream); };
    auto norm = [&](bf16* w, int64_t n) { launch_fill_normal_bf16(w, n, ++stream_id, 1.0f, 0.0f, stream); };
    if (mapper_->embed_gpu() == g) matrix(embedding_.table, vocab * dim);
    if (mapper_->head_gpu() == g) {
      norm(head_.final_norm, dim);
      if (head_.lm_head != embedding_.table) matrix(head_.lm_head, vocab * dim);
    }
    for (size_t il = 0; il < layers_.size(); ++il) {
      if (mapper_->layer_gpu(int(il)) != g) continue;
      const GpuLayer& layer = layers_[il];
      const Strides s = strides_of(config_, layer.shape);
      norm(layer.attn_norm, s.dim);
      matrix(layer.qkv, s.qkv_dim * s.dim);
      if (layer.qkv_bias) matrix(layer.qkv_bias, s.qkv_dim);
      if (layer.q_norm) norm(layer.q_norm, config_.head_dim);
      if (layer.k_norm) norm(layer.k_norm, config_.head_dim);
      matrix(layer.o_proj.weight, s.dim * s.q_dim);
      norm(layer.mlp_norm, s.dim);
      if (!layer.moe) {
        matrix(layer.gate_up, 2 * s.ff_dim * s.dim);
        matrix(layer.down_proj.weight, s.dim * s.ff_dim);
        continue;
      }
      const ExpertShape& e = layer.moe->shape;
      matrix(layer.moe->router, e.n_experts * s.dim);
      matrix(layer.moe->experts_gate_up, e.local_experts * 2 * e.expert_ff * s.dim);
      matrix(layer.moe->experts_down, e.local_experts * s.dim * e.expert_ff);
      if (layer.moe->shared_gate_up) {
        matrix(layer.moe->shared_gate_up, 2 * e.shared_ff * s.dim);
        matrix(layer.moe->shared_down, s.dim * e.shared_ff);
        matrix(layer.moe->shared_gate, s.dim);
      }
    }
    CUDA_CHECK(cudaStreamSynchronize(stream));
  }
}

}  // namespace shardlm::cuda
