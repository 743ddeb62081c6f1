// A sequence's penalised tokens, kept up to date as it grows: every token it holds (marked as in
// its prompt, or counted in its output) and every token its logit_bias names, each once. A row it
// samples takes them as LogitPenalties (ops/logit_penalties.h). The Engine keeps one per slot and
// sends each step's rows to every rank, since a rank sees neither the prefix-cache's tokens nor
// which of a recomputed sequence's tokens were output.
#pragma once

#include <cstdint>
#include <span>
#include <unordered_map>
#include <vector>

#include "ops/logit_penalties.h"
#include "ops/sampler.h"

namespace shardlm {

class SequencePenalties {
 public:
  SequencePenalties() = default;  // penalises nothing
  // prompt_length: how many of the tokens the sequence will hold are its prompt; -1: those it holds
  // when it first samples (prompt_ends_at).
  SequencePenalties(const SamplingParams& sampling, int64_t prompt_length);

  bool active() const { return active_; }
  // Before the sequence's first sampled row, when its prompt length was not given: the prompt is
  // what it holds with that row's chunk (`length` tokens).
  void prompt_ends_at(int64_t length);
  // Counts tokens appended at positions first_position, first_position + 1, ...
  void count(std::span<const int32_t> tokens, int64_t first_position);
  // The penalties of a row sampled after `chunk`, which the sequence is about to take at
  // first_position (and which ends its prompt, when nothing else did), without counting it here:
  // a copy of the list with the chunk's few tokens added, not of the whole index.
  LogitPenalties row_after(std::span<const int32_t> chunk, int64_t first_position) const;

 private:
  bool active_ = false;
  bool counts_history_ = false;  // false: logit_bias alone, which needs no history
  PenaltyScales scales_;
  int64_t prompt_length_ = -1;
  std::unordered_map<int32_t, size_t> index_;  // token -> its entry in tokens_
  std::vector<PenalisedToken> tokens_;
};

}  // namespace shardlm
