#include "runtime/scheduler.h"

#include <algorithm>
#include <span>

#include "core/error.h"

namespace shardlm {

Scheduler::Scheduler(Engine& engine, const Tokenizer& tokenizer, SchedulerOptions options)
    : engine_(engine), tokenizer_(tokenizer), options_(options) {
  if (options_.max_num_batched_tokens < 1)
    fail("--max-num-batched-tokens must be >= 1, got {}", options_.max_num_batched_tokens);
}

Scheduler::~Scheduler() {
  for (const Active& active : running_) engine_.remove_sequence(active.sequence);
}

void Scheduler::check(const SchedulerRequest& request) const {
  if (request.prompt.empty()) fail("prompt: the prompt has no tokens");
  if (request.max_tokens < 1) fail("max_tokens must be >= 1, got {}", request.max_tokens);
  const int64_t needed = int64_t(request.prompt.size()) + request.max_tokens;
  if (needed > engine_.max_seq_len())
    fail("max_tokens: the prompt's {} tokens plus max_tokens {} exceed the {} tokens a sequence may hold "
         "(--max-model-len)",
         request.prompt.size(), request.max_tokens, engine_.max_seq_len());
  for (int32_t token : request.prompt)
    if (token < 0 || token >= engine_.config().vocab_size)
      fail("prompt: token id {} is outside the vocabulary (vocab_size {})", token, engine_.config().vocab_size);
  engine_.check_sampling(request.sampling);
  if (request.prompt_logprobs && request.sampling.logprobs < 0)
    fail("logprobs: the prompt's log-probabilities are reported with logprobs >= 0, got {}", request.sampling.logprobs);
}

uint64_t Scheduler::submit(SchedulerRequest request) {
  check(request);
  Active active;
  active.id = next_id_++;
  active.stops = std::make_unique<StopStrings>(request.stop);
  active.output.emplace(tokenizer_, *active.stops, request.eos_token_ids, request.max_tokens, request.skip_special_tokens);
  active.prefill = request.prompt;
  active.request = std::move(request);
  waiting_.push_back(std::move(active));
  return waiting_.back().id;
}

void Scheduler::cancel(uint64_t id) {
  const auto waiting = std::find_if(waiting_.begin(), waiting_.end(), [id](const Active& a) { return a.id == id; });
  if (waiting != waiting_.end()) {
    waiting_.erase(waiting);
    return;
  }
  const auto running = std::find_if(running_.begin(), running_.end(), [id](const Active& a) { return a.id == id; });
  if (running == running_.end()) return;
  engine_.remove_sequence(running->sequence);
  running_.erase(running);
}

double Scheduler::kv_cache_usage() const {
  const KvBlockPool& blocks = engine_.kv_blocks();
  return double(blocks.used_blocks()) / double(blocks.num_blocks());
}

void Scheduler::preempt(std::list<Active>::iterator running) {
  engine_.remove_sequence(running->sequence);
  running->sequence = -1;
  running->prefill = running->request.prompt;
  running->prefill.insert(running->prefill.end(), running->output->tokens().begin(), running->output->tokens().end());
  running->prefilled = 0;
  running->prompt_logprobs.clear();  // scored again with the prompt, if no token came yet
  waiting_.push_front(std::move(*running));
  running_.erase(running);
  ++preemptions_;
}

std::vector<RequestUpdate> Scheduler::step() {
  last_step_ = {};
  int budget = options_.max_num_batched_tokens;
  std::vector<SequenceChunk> chunks;
  std::vector<Active*> chunk_owner;
  // Blocks this step's chunks will take: the pool must hold them all when the step runs.
  int planned_blocks = 0;
  const uint64_t preemptions_before = preemptions_;
  auto free_blocks = [&] { return engine_.kv_blocks().free_blocks() - planned_blocks; };
  // Decodes first: a running stream never waits for a prompt. Where the blocks run out, the newest
  // requests give theirs back (the one that needs a block, when it is the newest itself).
  for (auto it = running_.begin(); it != running_.end();) {
    if (it->prefilling() || budget == 0) {
      ++it;
      continue;
    }
    const int needed = engine_.kv_blocks_needed(it->sequence, 1);
    while (needed > free_blocks() && std::next(it) != running_.end()) preempt(std::prev(running_.end()));
    if (needed > free_blocks()) {
      preempt(it++);
      continue;
    }
    planned_blocks += needed;
    chunks.push_back({it->sequence, std::span<const int32_t>(&it->next_token, 1), true});
    chunk_owner.push_back(&*it);
    --budget;
    ++it;
  }
  // A step that preempted admits nobody: the blocks just freed are for the running requests, and
  // the preempted one would otherwise be taken back at once and thrash (as vLLM schedules).
  const bool preempted = preemptions_ != preemptions_before;
  // A prompt chunk as long as the budget and the free blocks allow (none when not one token fits).
  auto prefill_chunk = [&](Active& active) {
    const int64_t fitting = engine_.kv_room(active.sequence) + int64_t(free_blocks()) * engine_.kv_blocks().block_size();
    const size_t count = std::min({active.prefill.size() - active.prefilled, size_t(budget), size_t(std::max<int64_t>(fitting, 0))});
    if (count == 0) return;
    const bool ends_prompt = active.prefilled + count == active.prefill.size();
    const std::span<const int32_t> prefill(active.prefill);
    // Each row scores the prompt token after it; the prompt's last row samples instead.
    const std::span<const int32_t> scored =
        active.scores_prompt() ? prefill.subspan(active.prefilled + 1, ends_prompt ? count - 1 : count) : std::span<const int32_t>{};
    chunks.push_back({active.sequence, prefill.subspan(active.prefilled, count), ends_prompt, scored});
    chunk_owner.push_back(&active);
    planned_blocks += engine_.kv_blocks_needed(active.sequence, int64_t(count));
    budget -= int(count);
  };
  for (Active& active : running_) {
    if (budget == 0) break;
    if (active.prefilling()) prefill_chunk(active);
  }
  // A request is admitted only when its first chunk fits beside the cached prefix it takes, so an
  // admission is never undone (nor its prefix lookup counted twice).
  while (!preempted && budget > 0 && !waiting_.empty() && int(running_.size()) < engine_.max_sequences() &&
         engine_.kv_blocks_to_start(waiting_.front().prefill, budget, !waiting_.front().scores_prompt()) <= free_blocks()) {
    running_.push_back(std::move(waiting_.front()));
    waiting_.pop_front();
    Active& admitted = running_.back();
    // A recomputed request brings its output back among the prefilled tokens: the penalties still
    // count it as output.
    admitted.sequence = engine_.add_sequence(admitted.request.sampling, int64_t(admitted.request.prompt.size()));
    if (!admitted.scores_prompt()) admitted.prefilled = size_t(engine_.reuse_prefix(admitted.sequence, admitted.prefill));
    prefill_chunk(admitted);
  }
  if (chunks.empty()) return {};

  const auto engine_start = std::chrono::steady_clock::now();
  const std::vector<int32_t> tokens = engine_.step(chunks);
  last_step_.engine_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - engine_start).count();
  for (const SequenceChunk& chunk : chunks) last_step_.tokens += int(chunk.tokens.size());
  std::vector<RequestUpdate> updates;
  size_t next = 0;
  for (size_t i = 0; i < chunks.size(); ++i) {
    Active& active = *chunk_owner[i];
    if (active.prefilling()) active.prefilled += chunks[i].tokens.size();
    const std::vector<SampledLogprobs>& scored = engine_.last_prompt_logprobs()[i];
    active.prompt_logprobs.insert(active.prompt_logprobs.end(), scored.begin(), scored.end());
    if (!chunks[i].wants_token) continue;
    const int32_t token = tokens[next];
    RequestUpdate update;
    update.prompt_logprobs = std::move(active.prompt_logprobs);
    active.prompt_logprobs.clear();
    if (const auto& logprobs = engine_.last_logprobs(); next < logprobs.size()) update.logprobs = logprobs[next];
    ++next;
    update.id = active.id;
    update.token = token;
    update.text = active.output->push(token);
    update.finished = active.output->finished();
    update.prompt_tokens = int(active.request.prompt.size());
    update.completion_tokens = int(active.output->tokens().size());
    if (update.finished) update.finish_reason = active.output->finish_reason();
    active.next_token = token;
    updates.push_back(std::move(update));
  }
  // Finished requests leave the engine after the step, so no chunk pointed into a freed element.
  for (auto it = running_.begin(); it != running_.end();) {
    if (!it->output->finished()) {
      ++it;
      continue;
    }
    engine_.remove_sequence(it->sequence);
    it = running_.erase(it);
  }
  return updates;
}

}  // namespace shardlm
