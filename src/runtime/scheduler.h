// Continuous batching over an Engine: requests join and leave at any step. Each step first gives
// every decoding sequence its next token, then spends what is left of the step's token budget on
// prompt chunks, oldest request first, admitting waiting requests (first come, first served) while
// the engine has a free sequence slot and free KV blocks. A long prompt is prefilled over several
// steps, so the streams already running keep their pace. A new request first takes what the
// engine's prefix cache holds of its prompt. When the KV cache runs out of blocks for the running
// decodes, the newest request is preempted: its blocks are freed and it waits at the head of the
// queue to be recomputed (its prompt and the tokens it has produced), so nothing fails and a greedy
// request's tokens do not change (a sampled one goes on with a fresh random stream, since its slot
// may differ). Single-threaded: the server's engine thread owns it.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <list>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/engine.h"
#include "ops/sampler.h"
#include "runtime/sequence_output.h"
#include "runtime/stop_strings.h"
#include "tokenizer/tokenizer.h"

namespace shardlm {

struct SchedulerOptions {
  int max_num_batched_tokens = 2048;  // tokens one step takes: decodes and prompt chunks together
};

struct SchedulerRequest {
  std::vector<int32_t> prompt;
  int max_tokens = 16;
  SamplingParams sampling;
  std::vector<std::string> stop;
  std::vector<int32_t> eos_token_ids;
  // Report the log-probability of every prompt token after the first (with sampling.logprobs most
  // likely tokens), as OpenAI's echo with logprobs does. Such a prompt is computed whole, not taken
  // from the prefix cache (a cached block has no logits).
  bool prompt_logprobs = false;
  bool skip_special_tokens = true;  // false: special tokens the model writes show in the text
};

// What the last step put through the model (decode rows and prompt chunks together) and how long the
// engine took over it, of the step's whole time (the rest is scheduling and detokenising).
struct StepReport {
  int tokens = 0;
  double engine_seconds = 0;
};

// What one step did for one request.
struct RequestUpdate {
  uint64_t id = 0;
  int32_t token = 0;       // the token sampled this step
  std::string text;        // text that became final with it (may be empty)
  bool finished = false;
  std::string finish_reason;  // when finished: "stop" or "length"
  int prompt_tokens = 0, completion_tokens = 0;
  std::optional<SampledLogprobs> logprobs;  // when the request's sampling asks for them
  // With the first token of a request asking for prompt_logprobs: those of prompt tokens 1, 2, ...
  std::vector<SampledLogprobs> prompt_logprobs;
};

class Scheduler {
 public:
  // The engine and tokenizer must outlive the scheduler.
  Scheduler(Engine& engine, const Tokenizer& tokenizer, SchedulerOptions options);
  ~Scheduler();

  // Throws Error naming what does not fit (an empty prompt, a token outside the vocabulary,
  // max_tokens < 1, a prompt and max_tokens longer than a sequence may be, bad sampling settings).
  // It reads only what opening the engine fixed, so any thread may call it.
  void check(const SchedulerRequest& request) const;
  // Queues a request, checked as above.
  uint64_t submit(SchedulerRequest request);
  // Forgets a request; a running one frees its engine slot now. Unknown ids are ignored.
  void cancel(uint64_t id);
  size_t running() const { return running_.size(); }
  size_t waiting() const { return waiting_.size(); }
  bool has_work() const { return !running_.empty() || !waiting_.empty(); }
  // The share (0..1) of the engine's KV blocks that sequences hold.
  double kv_cache_usage() const;
  // Requests preempted so far (their blocks taken back to let older ones go on).
  uint64_t preemptions() const { return preemptions_; }
  // The engine's KV blocks and prefix-cache counters.
  const KvBlockPool& kv_blocks() const { return engine_.kv_blocks(); }
  // Runs one engine step (nothing when there is no work) and returns an update for every request
  // that received a token; finished requests have left the engine.
  std::vector<RequestUpdate> step();
  const StepReport& last_step() const { return last_step_; }
  // With no work, the engine's other ranks still wait for its steps with a time limit: call idle()
  // at least every idle_interval() while there is nothing to step.
  std::chrono::milliseconds idle_interval() const { return engine_.keep_alive_interval(); }
  void idle() { engine_.keep_alive(); }

 private:
  struct Active {
    uint64_t id = 0;
    SchedulerRequest request;
    std::unique_ptr<StopStrings> stops;
    std::optional<SequenceOutput> output;
    int sequence = -1;     // the engine's, once admitted
    // What admission prefills: the prompt, and after a preemption the tokens produced so far too
    // (the last of them then samples the next token, as a decode step would have).
    std::vector<int32_t> prefill;
    size_t prefilled = 0;  // of those, already in the engine
    int32_t next_token = 0;
    std::vector<SampledLogprobs> prompt_logprobs;  // scored so far, until the first token
    bool prefilling() const { return prefilled < prefill.size(); }
    // Until its first token a request that asked scores its prompt (prefill is then the prompt).
    bool scores_prompt() const { return request.prompt_logprobs && output->tokens().empty(); }
  };
  // Frees the running request's sequence and puts it first in the queue, to be recomputed.
  void preempt(std::list<Active>::iterator running);

  Engine& engine_;
  const Tokenizer& tokenizer_;
  SchedulerOptions options_;
  uint64_t next_id_ = 1;
  std::deque<Active> waiting_;
  std::list<Active> running_;  // in admission order; elements stay put while chunks point into them
  uint64_t preemptions_ = 0;
  StepReport last_step_;
};

}  // namespace shardlm
