// A rank on the CPU: the model (whole, or one tensor-parallel rank's slices), the paged KV cache of
// every slot, and one seeded sampler per slot, sampling on the host.
#pragma once

#include <optional>

#include "engine/rank_model.h"
#include "model/kv_cache.h"

namespace shardlm {

class CpuRankModel final : public RankModel {
 public:
  CpuRankModel(LlamaModel model, const KvCacheShape& kv);

  const ModelConfig& config() const override { return model_.config(); }
  int max_sequences() const override { return cache_.tables().shape().sequences; }
  int64_t max_seq_len() const override { return cache_.tables().shape().max_seq_len; }
  std::vector<int32_t> forward_sample(std::span<const TokenRow> rows, std::span<const SamplingParams> sampling,
                                      std::span<const LogitPenalties> penalties) override;
  const std::vector<std::optional<SampledLogprobs>>& last_logprobs() const override { return logprobs_; }
  std::vector<float> forward_logits(std::span<const TokenRow> rows) override;
  int kv_blocks() const override { return cache_.tables().shape().num_blocks; }
  void update_kv_blocks(std::span<const KvBlockUpdate> updates) override {
    for (const KvBlockUpdate& update : updates) cache_.apply(update);
  }
  void reset_slot(int slot) override { samplers_.at(size_t(slot)).reset(); }

  const LlamaModel& model() const { return model_; }

 private:
  LlamaModel model_;
  KvCache cache_;
  std::vector<std::optional<Sampler>> samplers_;  // made at a slot's first sampled token
  std::vector<std::optional<SampledLogprobs>> logprobs_;
};

}  // namespace shardlm
