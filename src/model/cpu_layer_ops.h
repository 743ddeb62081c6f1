// The decoder layer's ops (model/decoder_layer.h) on the CPU, for one forward pass over a packed
// batch of rows: activations and the residual stream in f32, weights read in their stored dtype,
// keys and values in the f32 paged cache (TokenRow::sequence is the slot).
#pragma once

#include <span>
#include <vector>

#include "core/communicator.h"
#include "core/weight_view.h"
#include "io/model_config.h"
#include "model/kv_cache.h"
#include "model/llama_weights.h"
#include "model/rope_frequencies.h"
#include "model/token_row.h"
#include "ops/cpu/expert_routing.h"

namespace shardlm {

class CpuLayerOps {
 public:
  using Layer = LlamaLayerWeights;

  // `comm`: the tensor-parallel group (null without one); `residual`: (rows, hidden_size).
  CpuLayerOps(const ModelConfig& config, const RopeFrequencies& rope, Communicator* comm,
              std::span<const TokenRow> rows, KvCache& cache, std::vector<float>& residual);

  std::vector<float> rms_norm(const WeightView& weight) const;
  std::vector<float> qkv_rope(const std::vector<float>& normed, const Layer& layer, int il) const;
  std::vector<float> attention(const std::vector<float>& queries, const Layer& layer, int il) const;
  void add_projection(const std::vector<float>& input, const Linear& projection);
  std::vector<float> gate_up_swiglu(const std::vector<float>& normed, const Layer& layer) const;
  cpu::ExpertRoutes route(const std::vector<float>& normed, const SparseMoeWeights& moe) const;
  void add_experts(const std::vector<float>& normed, const cpu::ExpertRoutes& routes, const SparseMoeWeights& moe);

 private:
  int64_t n_rows() const { return int64_t(rows_.size()); }

  const ModelConfig& config_;
  const RopeFrequencies& rope_;
  Communicator* comm_;
  std::span<const TokenRow> rows_;
  KvCache& cache_;
  std::vector<float>& residual_;
};

}  // namespace shardlm
