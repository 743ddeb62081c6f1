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

LogitPenalties SequencePenalties::row_after(std::span<const int32_t> chunk, int64_t first_position) const {
  LogitPenalties row{scales_, tokens_};
  if (!counts_history_) return row;
  const int64_t prompt_length = prompt_length_ >= 0 ? prompt_length_ : first_position + int64_t(chunk.size());
  std::unordered_map<int32_t, size_t> added;  // tokens new to this sequence -> their entry in row.tokens
  for (size_t i = 0; i < chunk.size(); ++i) {
    const auto known = index_.find(chunk[i]);
    size_t entry = 0;
    if (known != index_.end()) {
      entry = known->second;
    } else {
      const auto [found, inserted] = added.emplace(chunk[i], row.tokens.size());
      if (inserted) row.tokens.push_back({chunk[i], 0, 0, 0.0f});
      entry = found->second;
    }
    if (first_position + int64_t(i) < prompt_length) row.tokens[entry].in_prompt = 1;
    else ++row.tokens[entry].output_count;
  }
  return row;
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
