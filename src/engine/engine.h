// The library's way to run a model: open it on a device (whole, on a device map, or over
// tensor-parallel ranks), add and remove sequences, and run one forward pass at a time over a
// ragged batch in which each sequence brings its next tokens: a chunk of its prompt, or the one
// token it decodes. The command line and the server drive this same API, one step after another.
//
// Under tensor parallelism the Engine is the leading rank: before every step it sends the step to
// the other ranks (threads it started, or processes a launcher started, which call follow()), so
// every rank runs the same forward pass while only the leader schedules.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "engine/engine_options.h"
#include "engine/kv_block_pool.h"
#include "engine/rank_report.h"
#include "engine/sequence_penalties.h"
#include "io/model_config.h"
#include "model/llama_model.h"
#include "ops/sampler.h"

namespace shardlm {

// A sequence's next tokens in a step, appended at the positions after those it already holds.
struct SequenceChunk {
  int sequence = 0;
  std::span<const int32_t> tokens;
  bool wants_token = true;  // sample a token after the last one (false: a prompt chunk before its end)
  // Prompt log-probabilities: the chunk's i-th row scores scored[i], the prompt's token after it
  // (so at most tokens.size() of them, one fewer when the chunk wants a token). Reported by
  // last_prompt_logprobs with the sequence's SamplingParams::logprobs most likely tokens.
  std::span<const int32_t> scored = {};
};

class Engine {
 public:
  static std::unique_ptr<Engine> open(const EngineOptions& options);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  const ModelConfig& config() const;
  int max_sequences() const;
  int64_t max_seq_len() const;
  // False in a launched process of rank > 0: it runs the leader's steps with follow().
  bool leads() const { return leads_; }
  // What loading this rank took, for people; empty when there is nothing to say (the CPU maps the
  // checkpoint in place).
  std::string load_summary() const;
  // The same for programs: load time and bytes, device memory in use, what offloaded units cost.
  RankReport report() const;

  // Throws Error naming the setting when `sampling` is out of range for this model (validate_sampling_params,
  // and a logit_bias token outside the vocabulary).
  void check_sampling(const SamplingParams& sampling) const;
  // Takes a free slot for a new sequence, sampled with `sampling` (checked here); returns its id.
  // prompt_length: how many of the tokens it will hold are its prompt, which presence and frequency
  // penalties do not count (a recomputed sequence brings its output back as prompt chunks); -1:
  // those it holds when it first samples.
  int add_sequence(const SamplingParams& sampling, int64_t prompt_length = -1);
  // Frees the slot and its KV blocks (full blocks stay cached for later prompts until evicted).
  // Fails only for a sequence that is not running: after the ranks have failed it still frees.
  void remove_sequence(int sequence);
  int64_t length(int sequence) const;  // tokens the sequence holds

  // Prefix caching: gives a new sequence (holding no tokens yet) the cached KV of the longest run
  // of full blocks that `prompt` starts with, leaving at least its last token to compute (its
  // logits pick the first new token). Returns the tokens now held; pass the prompt's rest next.
  int64_t reuse_prefix(int sequence, std::span<const int32_t> prompt);
  // Free blocks a new sequence with this prompt would take to start: the cached prefix blocks no
  // sequence holds (they stop counting as free) and the new blocks of its first chunk, at most
  // chunk_tokens past the prefix (or, when it will not reuse a prefix, the blocks of its first
  // chunk alone). Looks only: nothing is taken or counted.
  int kv_blocks_to_start(std::span<const int32_t> prompt, int64_t chunk_tokens, bool reuses_prefix = true) const;
  // The paged KV cache, for schedulers: blocks a step of these chunks would take, and blocks free.
  int kv_blocks_needed(std::span<const SequenceChunk> chunks) const;
  int kv_blocks_needed(int sequence, int64_t new_tokens) const;
  // Positions left in the sequence's last block (tokens it can take without a new block).
  int64_t kv_room(int sequence) const;
  const KvBlockPool& kv_blocks() const { return pool_; }

  // One forward pass over the chunks (at most one per sequence): returns the sampled token of every
  // chunk that wants one, in chunk order. The tokens are not appended: pass each back as the
  // sequence's next chunk. Fails, before running anything, when the KV cache has fewer free blocks
  // than the chunks need (kv_blocks_needed).
  std::vector<int32_t> step(std::span<const SequenceChunk> chunks);
  // After step: for each token it returned, its log-probabilities when its sequence's sampling
  // settings ask for them (SamplingParams::logprobs), else none.
  const std::vector<std::optional<SampledLogprobs>>& last_logprobs() const { return sampled_logprobs_; }
  // After step: for each chunk, in chunk order, the log-probabilities of its scored tokens.
  const std::vector<std::vector<SampledLogprobs>>& last_prompt_logprobs() const { return prompt_logprobs_; }
  // The same pass, returning the f32 logits (vocab_size each) of the rows that sample or score a
  // token, in row order.
  std::vector<float> step_logits(std::span<const SequenceChunk> chunks);

  // A launched follower: runs the leader's steps until the leader closes its Engine.
  void follow();
  // The other ranks wait for each step with a time limit (EngineOptions::comm_timeout): while the
  // leader has nothing to run, it calls keep_alive at least every keep_alive_interval.
  std::chrono::milliseconds keep_alive_interval() const;
  void keep_alive();

  struct Ranks;  // this process's ranks and their communicator; defined in engine.cpp

 private:
  explicit Engine(std::unique_ptr<Ranks> ranks);
  struct Slot {
    bool live = false;
    int64_t length = 0;
    SamplingParams sampling;  // without logit_bias, which penalties holds
    SequencePenalties penalties;
    std::vector<int32_t> blocks;  // the KV blocks of its positions, in order
    std::vector<int32_t> tokens;  // what it holds, to key its full blocks by (with prefix caching)
    int keyed_blocks = 0;         // leading full blocks already indexed in the pool
    uint64_t last_key = KvBlockPool::kFirstBlockParentKey;  // the key of the last of those
  };
  std::vector<TokenRow> rows_of(std::span<const SequenceChunk> chunks);
  // One entry per row that wants logits (none when no chunk's sequence is penalised): a sampled
  // row's penalties with its chunk counted, nothing for a scored row.
  std::vector<LogitPenalties> penalties_of(std::span<const SequenceChunk> chunks) const;
  // Gives the chunks' sequences the blocks their new positions need; returns the table changes for
  // the ranks (with those pending from reuse_prefix).
  std::vector<KvBlockUpdate> take_blocks(std::span<const SequenceChunk> chunks);
  void advance(std::span<const SequenceChunk> chunks);
  void release_blocks(Slot& slot);
  // The most leading blocks of a prompt that may come from the prefix cache.
  int reusable_blocks(std::span<const int32_t> prompt) const;
  // Runs work on the leader; if it fails, the other ranks are stopped before the error propagates.
  template <typename Work>
  auto guarded(Work&& work);

  std::unique_ptr<Ranks> ranks_;
  bool leads_ = true;
  std::vector<Slot> slots_;
  KvBlockPool pool_;
  std::vector<KvBlockUpdate> pending_updates_;  // from reuse_prefix, sent with the next step
  std::vector<std::optional<SampledLogprobs>> sampled_logprobs_;
  std::vector<std::vector<SampledLogprobs>> prompt_logprobs_;
};

}  // namespace shardlm
