// One row of a packed batch: the unit every forward pass takes, so that prefill, decode and batches
// of prompts of different sequences are the same call.
#pragma once

#include <cstdint>

namespace shardlm {

// A token of sequence `sequence` (its KV cache or slot) at `position`.
struct TokenRow {
  int sequence = 0;
  int64_t position = 0;   // rows of one sequence come in increasing, consecutive positions
  int32_t token = 0;
  bool wants_logits = false;
  // >= 0: the row's logits score this token (the prompt's next one) instead of sampling: its
  // log-probability is reported, nothing is drawn. Such a row wants logits too.
  int32_t scored_token = -1;
};

// A row that draws the next token from its logits (not one that only scores the prompt's next token).
inline bool samples(const TokenRow& row) { return row.wants_logits && row.scored_token < 0; }

}  // namespace shardlm
