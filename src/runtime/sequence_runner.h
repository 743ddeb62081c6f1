// What the generation loop needs from a backend: room for a set of sequences, and a step that runs
// a packed batch of token rows and returns the next token of every row that wants one. The CPU
// runner samples on the host; the CUDA runner samples on the device so only ids cross.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "io/model_config.h"
#include "model/llama_model.h"
#include "model/kv_cache.h"
#include "ops/sampler.h"

namespace shardlm {

class SequenceRunner {
 public:
  virtual ~SequenceRunner() = default;
  virtual const ModelConfig& config() const = 0;
  // Makes room for n_sequences sequences of up to max_tokens tokens each, forgetting earlier ones.
  // Sequence i samples with seed + i (CPU) or its own device random stream (CUDA).
  virtual void begin(int n_sequences, int64_t max_tokens, const SamplingParams& sampling) = 0;
  // Runs the rows; returns one token for every row that wants logits, in row order.
  virtual std::vector<int32_t> step(std::span<const TokenRow> rows) = 0;
};

class CpuSequenceRunner final : public SequenceRunner {
 public:
  explicit CpuSequenceRunner(const LlamaModel& model) : model_(model) {}
  const ModelConfig& config() const override { return model_.config(); }
  void begin(int n_sequences, int64_t max_tokens, const SamplingParams& sampling) override;
  std::vector<int32_t> step(std::span<const TokenRow> rows) override;

 private:
  const LlamaModel& model_;
  std::vector<KvCache> caches_;
  std::vector<KvCache*> cache_pointers_;
  std::vector<Sampler> samplers_;
};

}  // namespace shardlm
