// The CPU runner: one KV cache and one seeded sampler per sequence.
#include "runtime/sequence_runner.h"

namespace shardlm {

void CpuSequenceRunner::begin(int n_sequences, int64_t max_tokens, const SamplingParams& sampling) {
  validate_sampling_params(sampling);
  caches_.clear();
  samplers_.clear();
  cache_pointers_.clear();
  for (int i = 0; i < n_sequences; ++i) {
    caches_.push_back(model_.make_cache(max_tokens));
    SamplingParams own = sampling;
    own.seed += uint64_t(i);
    samplers_.emplace_back(own);
  }
  for (KvCache& cache : caches_) cache_pointers_.push_back(&cache);
}

std::vector<int32_t> CpuSequenceRunner::step(std::span<const TokenRow> rows) {
  const std::vector<float> logits = model_.forward(rows, cache_pointers_);
  const size_t vocab = size_t(model_.config().vocab_size);
  std::vector<int32_t> tokens;
  for (const TokenRow& row : rows) {
    if (!row.wants_logits) continue;
    const std::span<const float> row_logits(logits.data() + tokens.size() * vocab, vocab);
    const int32_t token = samplers_[size_t(row.sequence)].sample(row_logits);
    if (token == kNonFiniteLogits) fail_non_finite_logits(row.sequence, row.position);
    tokens.push_back(token);
  }
  return tokens;
}

}  // namespace shardlm
