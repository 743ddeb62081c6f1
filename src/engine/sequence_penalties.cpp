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

namespace {

// Counts `chunk`, taken at first_position onwards, into the entries entry_of(token) gives (making
// one for a new token): in the prompt before prompt_length, else output. A prompt length not yet
// known (-1) counts everything as prompt: it becomes known no later than the first sampled row, and
// output only follows that.
template <typename EntryOf>
void tally(std::span<const int32_t> chunk, int64_t first_position, int64_t prompt_length, EntryOf entry_of) {
  for (size_t i = 0; i < chunk.size(); ++i) {
    PenalisedToken& entry = entry_of(chunk[i]);
    if (prompt_length < 0 || first_position + int64_t(i) < prompt_length) entry.in_prompt = 1;
    else ++entry.output_count;
  }
}

}  // namespace

LogitPenalties SequencePenalties::row_after(std::span<const int32_t> chunk, int64_t first_position) const {
  LogitPenalties row{scales_, tokens_};
  if (!counts_history_) return row;
  std::unordered_map<int32_t, size_t> added;  // tokens new to this sequence -> their entry in row.tokens
  tally(chunk, first_position, prompt_length_ >= 0 ? prompt_length_ : first_position + int64_t(chunk.size()),
        [&](int32_t token) -> PenalisedToken& {
          if (const auto known = index_.find(token); known != index_.end()) return row.tokens[known->second];
          const auto [found, inserted] = added.emplace(token, row.tokens.size());
          if (inserted) row.tokens.push_back({token, 0, 0, 0.0f});
          return row.tokens[found->second];
        });
  return row;
}

void SequencePenalties::count(std::span<const int32_t> tokens, int64_t first_position) {
  if (!counts_history_) return;
  tally(tokens, first_position, prompt_length_, [&](int32_t token) -> PenalisedToken& {
    const auto [found, inserted] = index_.emplace(token, tokens_.size());
    if (inserted) tokens_.push_back({token, 0, 0, 0.0f});
    return tokens_[found->second];
  });
}

}  // namespace shardlm
