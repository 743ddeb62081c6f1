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
};

}  // namespace shardlm
