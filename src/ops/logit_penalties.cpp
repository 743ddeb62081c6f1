#include "ops/logit_penalties.h"

#include "core/error.h"

namespace shardlm {

void check_logit_penalties(std::span<const LogitPenalties> penalties, size_t logit_rows, int vocab_size) {
  if (!penalties.empty() && penalties.size() != logit_rows)
    fail("logit penalties came for {} rows, but {} rows want logits", penalties.size(), logit_rows);
  for (const LogitPenalties& row : penalties)
    for (const PenalisedToken& token : row.tokens)
      if (token.token < 0 || token.token >= vocab_size)
        fail("logit penalties: token id {} is outside the vocabulary (vocab_size {})", token.token, vocab_size);
}

void apply_logit_penalties(std::span<float> logits, const LogitPenalties& penalties) {
  for (const PenalisedToken& token : penalties.tokens) {
    float& logit = logits[size_t(token.token)];
    logit = penalised_logit(logit, token, penalties.scales);
  }
}

}  // namespace shardlm
