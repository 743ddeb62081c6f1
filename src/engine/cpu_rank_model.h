// A rank on the CPU: the model (whole, or one tensor-parallel rank's slices), one KV cache and one
// seeded sampler per slot, sampling on the host.
#pragma once

#include <optional>

#include "engine/rank_model.h"
#include "model/kv_cache.h"

namespace shardlm {

class CpuRankModel final : public RankModel {
 public:
  CpuRankModel(LlamaModel model, int max_sequences, int64_t max_seq_len);

  const ModelConfig& config() const override { return model_.config(); }
  int max_sequences() const override { return int(caches_.size()); }
  int64_t max_seq_len() const override { return max_seq_len_; }
  std::vector<int32_t> forward_sample(std::span<const TokenRow> rows, std::span<const SamplingParams> sampling) override;
  std::vector<float> forward_logits(std::span<const TokenRow> rows) override;
  void reset_slot(int slot) override { samplers_.at(size_t(slot)).reset(); }

  const LlamaModel& model() const { return model_; }

 private:
  LlamaModel model_;
  int64_t max_seq_len_;
  std::vector<KvCache> caches_;
  std::vector<KvCache*> cache_pointers_;
  std::vector<std::optional<Sampler>> samplers_;  // made at a slot's first sampled token
};

}  // namespace shardlm
