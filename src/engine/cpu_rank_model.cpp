// Slot s samples with seed + s: sequence i of a batch draws from its own stream, as it did when
// each generate() call numbered its prompts from 0.
#include "engine/cpu_rank_model.h"

#include "core/error.h"

namespace shardlm {

CpuRankModel::CpuRankModel(LlamaModel model, const KvCacheShape& kv)
    : model_(std::move(model)), cache_(model_.make_cache(kv)), samplers_(size_t(kv.sequences)) {}

std::vector<float> CpuRankModel::forward_logits(std::span<const TokenRow> rows) {
  return model_.forward(rows, cache_);
}

std::vector<int32_t> CpuRankModel::forward_sample(std::span<const TokenRow> rows,
                                                  std::span<const SamplingParams> sampling,
                                                  std::span<const LogitPenalties> penalties) {
  const size_t vocab = size_t(model_.config().vocab_size);
  check_logit_penalties(penalties, sampling.size(), model_.config().vocab_size);
  const std::vector<float> logits = model_.forward(rows, cache_);
  std::vector<int32_t> tokens;
  std::vector<float> penalised;
  logprobs_.clear();
  for (const TokenRow& row : rows) {
    if (!row.wants_logits) continue;
    if (tokens.size() >= sampling.size()) fail("{} rows want logits, but sampling settings came for {}", tokens.size() + 1, sampling.size());
    const std::span<const float> row_logits(logits.data() + tokens.size() * vocab, vocab);
    const int top_n = sampling[tokens.size()].logprobs;
    int32_t token = row.scored_token;
    if (samples(row)) {
      std::optional<Sampler>& sampler = samplers_[size_t(row.sequence)];
      if (!sampler) {
        SamplingParams own = sampling[tokens.size()];
        own.seed += uint64_t(row.sequence);
        sampler.emplace(own);
      }
      const LogitPenalties* own = penalties.empty() ? nullptr : &penalties[tokens.size()];
      if (own && !own->tokens.empty()) {
        // Log-probabilities stay those of the raw logits: the penalties change a copy.
        penalised.assign(row_logits.begin(), row_logits.end());
        apply_logit_penalties(penalised, *own);
        token = sampler->sample(penalised);
      } else {
        token = sampler->sample(row_logits);
      }
      if (token == kNonFiniteLogits) fail_non_finite_logits(row.sequence, row.position);
    }
    logprobs_.push_back(top_n >= 0 ? std::optional(sampled_logprobs(row_logits, token, top_n)) : std::nullopt);
    tokens.push_back(token);
  }
  return tokens;
}

}  // namespace shardlm
