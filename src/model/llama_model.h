// A Llama-family causal LM on the CPU: Llama, Mistral (sliding window), Qwen2 (q/k/v bias) and
// Qwen3 (q/k RMSNorm). One forward pass takes a packed batch of token rows from any number of
// sequences, so prefill, decode and batches of prompts are the same call.
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <vector>

#include "io/model_config.h"
#include "io/safetensors.h"
#include "model/llama_weights.h"
#include "model/rope_frequencies.h"
#include "runtime/kv_cache.h"

namespace shardlm {

// One row of a packed batch: a token of sequence `sequence` at `position`.
struct TokenRow {
  int sequence = 0;       // index into the caches passed to forward()
  int64_t position = 0;   // rows of one sequence come in increasing, consecutive positions
  int32_t token = 0;
  bool wants_logits = false;
};

class LlamaModel {
 public:
  LlamaModel(ModelConfig config, Checkpoint checkpoint);
  static LlamaModel load(const std::filesystem::path& model_dir);

  const ModelConfig& config() const { return config_; }
  const Checkpoint& checkpoint() const { return checkpoint_; }
  KvCache make_cache(int64_t capacity) const;

  // Runs the rows through every layer, writing their keys and values into the caches, and returns
  // the logits of the rows that want them, in row order: (n_wanted, vocab_size).
  std::vector<float> forward(std::span<const TokenRow> rows, std::span<KvCache* const> caches) const;

 private:
  void attention_block(const LlamaLayerWeights& layer, int il, std::span<const TokenRow> rows,
                       std::span<KvCache* const> caches, std::vector<float>& x) const;
  void mlp_block(const LlamaLayerWeights& layer, std::vector<float>& x, int64_t n_rows) const;

  ModelConfig config_;
  Checkpoint checkpoint_;
  LlamaWeights weights_;
  RopeFrequencies rope_;
};

}  // namespace shardlm
