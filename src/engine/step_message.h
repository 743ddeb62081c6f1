// What the leading rank of a tensor-parallel group sends the others before each forward pass, so
// every rank runs the same step: the packed rows, their sampling settings and logit penalties and
// the changes to the KV block tables they run over, a slot to reset, or the end. It travels as a
// broadcast over the group's host communicator.
#pragma once

#include <cstdint>
#include <vector>

#include "core/communicator.h"
#include "model/kv_block_table.h"
#include "model/llama_model.h"
#include "ops/logit_penalties.h"
#include "ops/sampler.h"

namespace shardlm {

// KEEP_ALIVE runs nothing: it tells idle followers, which wait for each step with a time limit,
// that the leader is alive.
enum class StepKind : int32_t { SAMPLE, LOGITS, RESET_SLOT, STOP, KEEP_ALIVE };

struct StepMessage {
  StepKind kind = StepKind::STOP;
  std::vector<TokenRow> rows;             // SAMPLE, LOGITS
  std::vector<SamplingParams> sampling;   // SAMPLE: one per row that wants logits
  int slot = 0;                           // RESET_SLOT
  std::vector<KvBlockUpdate> kv_updates;  // SAMPLE, LOGITS: applied before the rows run
  std::vector<LogitPenalties> penalties;  // SAMPLE: none, or one per row that wants logits
};

// Rank 0 sends; every other rank receives the same message.
void send_step(Communicator& comm, const StepMessage& message);
StepMessage receive_step(Communicator& comm);

}  // namespace shardlm
