// One rank's model on its device, as the Engine drives it: a forward pass over packed token rows
// (TokenRow::sequence is the KV-cache slot, whose block table the Engine keeps up to date) that samples, or returns the logits of, the rows that
// want logits. Under tensor parallelism every rank runs every step; each returns the same result.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "io/model_config.h"
#include "engine/rank_report.h"
#include "model/kv_block_table.h"
#include "model/llama_model.h"
#include "ops/logit_penalties.h"
#include "ops/sampler.h"

namespace shardlm {

class RankModel {
 public:
  virtual ~RankModel() = default;
  virtual const ModelConfig& config() const = 0;
  virtual int max_sequences() const = 0;
  virtual int64_t max_seq_len() const = 0;

  // One token for every row that wants logits, in row order; sampling[i] is the i-th such row's,
  // and penalties[i] (when not empty: one per such row) what changes its logits before it is
  // sampled. A row with a scored_token returns that token, drawing nothing. A sequence's random
  // stream follows from its seed and its slot, so runs repeat.
  virtual std::vector<int32_t> forward_sample(std::span<const TokenRow> rows, std::span<const SamplingParams> sampling,
                                              std::span<const LogitPenalties> penalties) = 0;
  // After forward_sample: for each token it returned (sampled or scored), its log-probabilities
  // when its settings asked for them (SamplingParams::logprobs >= 0), else none.
  virtual const std::vector<std::optional<SampledLogprobs>>& last_logprobs() const = 0;
  // (rows wanting logits, vocab_size) f32 logits, in row order.
  virtual std::vector<float> forward_logits(std::span<const TokenRow> rows) = 0;
  // Blocks of keys and values this rank holds (as many as the Engine asked for, or as fitted the
  // GPU's memory under a memory-utilization share).
  virtual int kv_blocks() const = 0;
  // Changes to slots' KV block tables (model/kv_block_table.h), which the next forward reads through.
  virtual void update_kv_blocks(std::span<const KvBlockUpdate> updates) = 0;
  // The slot's sequence has ended: the next one there starts a fresh random stream.
  virtual void reset_slot(int slot) = 0;
  // What loading took, for people (bytes, time, speed, offloading); empty when there is nothing to say.
  virtual std::string load_summary() const { return {}; }
  virtual RankReport report() const { return {}; }
};

}  // namespace shardlm
