#include "engine/sequence_penalties.h"

namespace shardlm {

SequencePenalties::SequencePenalties(const SamplingParams& sampling, int64_t prompt_length)
    : active_(sampling.penalises()),
      counts_history_(sampling.repetition_penalty != 1.0f || sampling.frequency_penalty != 0.0f ||
                      sampling.presence_penalty != 0.0f),
      scales_{sampling.repetition_penalty, sampling.frequency_penalty, sampling.presence_penalty},
      prompt_length_(prompt_length) {
  for (const TokenBias& entry : sampling.logit_bias) {
    index_.emplace(entry.token, tokens_.size());
    tokens_.push_back({entry.token, 0, 0, entry.bias});
  }
}

void SequencePenalties::prompt_ends_at(int64_t length) {
  if (prompt_length_ < 0) prompt_length_ = length;
}

void SequencePenalties::count(std::span<const int32_t> tokens, int64_t first_position) {
  if (!counts_history_) return;
  for (size_t i = 0; i < tokens.size(); ++i) {
    const auto [found, inserted] = index_.emplace(tokens[i], tokens_.size());
    if (inserted) tokens_.push_back({tokens[i], 0, 0, 0.0f});
    PenalisedToken& entry = tokens_[found->second];
    // Until the prompt's end is known every token held is prompt: it becomes known no later than
    // the first sampled row, and output only follows that.
    if (prompt_length_ < 0 || first_position + int64_t(i) < prompt_length_) entry.in_prompt = 1;
    else ++entry.output_count;
  }
}

}  // namespace shardlm
