// A Llama-family causal LM on the CPU: Llama, Mistral (sliding window), Qwen2 (q/k/v bias) and
// Qwen3 (q/k RMSNorm). One forward pass takes a packed batch of token rows from any number of
// sequences, so prefill, decode and batches of prompts are the same call. Under tensor parallelism
// one LlamaModel is one rank: it holds its slices of the weights and calls its communicator where
// the plan leaves partial sums or split logits; every rank returns the same full logits.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "io/model_config.h"
#include "io/safetensors.h"
#include "model/llama_weights.h"
#include "model/rope_frequencies.h"
#include "model/tensor_parallel_rank.h"
#include "model/kv_cache.h"
#include "model/token_row.h"

namespace shardlm {

class LlamaModel {
 public:
  // Ranks of one tensor-parallel model share the checkpoint (one mapping of every file).
  LlamaModel(ModelConfig config, std::shared_ptr<const Checkpoint> checkpoint,
             std::optional<TensorParallelRank> tp = std::nullopt);
  static LlamaModel load(const std::filesystem::path& model_dir);

  const ModelConfig& config() const { return config_; }
  const Checkpoint& checkpoint() const { return *checkpoint_; }
  // Storage for every layer (or for held_layers only) with empty block tables: the Engine fills them.
  KvCache make_cache(const KvCacheShape& shape) const;
  KvCache make_cache(const KvCacheShape& shape, std::span<const int> held_layers) const;
  // `sequences` slots owning max_seq_len positions each from the start, for callers that run
  // sequences whole (tests, tools).
  KvCache make_whole_cache(int sequences, int64_t max_seq_len) const;
  // Copies these layers' weights into memory the process owns (a device map's "cpu"); the other
  // layers keep reading in place from the mapped checkpoint (its "disk"), which the kernel may page
  // out under memory pressure. Results are identical either way.
  void keep_layers_in_memory(const std::vector<int>& layers);
  const LlamaWeights& weights() const { return weights_; }

  // Runs the rows through every layer, writing their keys and values into the cache (each row's
  // sequence is its slot there), and returns the logits of the rows that want them, in row order:
  // (n_wanted, vocab_size).
  std::vector<float> forward(std::span<const TokenRow> rows, KvCache& cache) const;

  // forward() in pieces, for executors that run some layers elsewhere (a device map's GPU layers):
  // the hidden states x are (rows, hidden_size) f32 between the pieces.
  void check_rows(std::span<const TokenRow> rows, const KvCache& cache) const;
  std::vector<float> embed_rows(std::span<const TokenRow> rows) const;
  void run_layers(std::span<const TokenRow> rows, KvCache& cache, std::vector<float>& x,
                  int first_layer, int end_layer) const;
  // Final norm and LM head of the rows that want logits: (n_wanted, vocab_size).
  std::vector<float> head_logits(std::span<const TokenRow> rows, const std::vector<float>& x) const;
  // Reads these views instead of the checkpoint's (same shapes; e.g. the pinned bf16 copies an
  // offloading GPU executor streams from). The caller keeps the memory alive.
  void use_weights(LlamaWeights weights);

 private:
  void embed(std::span<const int32_t> tokens, float* out) const;
  std::vector<float> lm_head_logits(const std::vector<float>& normed, int64_t n_rows) const;

  ModelConfig config_;
  std::shared_ptr<const Checkpoint> checkpoint_;
  std::optional<TensorParallelRank> tp_;
  LlamaWeights weights_;
  RopeFrequencies rope_;
  std::vector<std::unique_ptr<std::byte[]>> resident_copies_;  // owned copies behind resident layers' views
};

}  // namespace shardlm
