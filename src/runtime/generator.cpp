// The generation loop. Each sequence keeps its own detokenizer and stop-string state; a step packs
// one row per live sequence into a single forward pass so the weights are read once per step.
#include "runtime/generator.h"

#include <algorithm>

#include "core/error.h"
#include "runtime/stop_strings.h"

namespace shardlm {
namespace {

struct SequenceState {
  int id = 0;  // the engine's sequence
  GenerationResult result;
  StreamingDetokenizer detokenizer;
  std::string decoded;   // everything the detokenizer has released
  size_t emitted = 0;    // bytes of `decoded` already passed to the callback
  bool finished = false;
};

}  // namespace

std::vector<GenerationResult> generate(Engine& engine, const Tokenizer& tokenizer,
                                       const std::vector<std::vector<int32_t>>& prompts,
                                       const GenerationOptions& options, const TextCallback& on_text) {
  if (options.max_new_tokens < 0) fail("--max-new-tokens must be >= 0, got {}", options.max_new_tokens);
  const StopStrings stop_strings(options.stop);
  std::vector<GenerationResult> results;
  if (options.max_new_tokens == 0) {
    for (const std::vector<int32_t>& prompt : prompts) results.push_back({prompt, {}, {}, "length"});
    return results;
  }
  const int64_t max_positions = engine.config().max_position_embeddings;

  std::vector<SequenceState> sequences;
  sequences.reserve(prompts.size());
  for (size_t i = 0; i < prompts.size(); ++i) {
    if (prompts[i].empty()) fail("prompt {} has no tokens: nothing to condition generation on", i);
    const int64_t needed = int64_t(prompts[i].size()) + options.max_new_tokens;
    if (needed > max_positions)
      fail("prompt of {} tokens plus --max-new-tokens {} exceeds the model's max_position_embeddings {}",
           prompts[i].size(), options.max_new_tokens, max_positions);
  }
  if (prompts.size() > size_t(engine.max_sequences()))
    fail("{} prompts, but the engine holds {} sequences at once", prompts.size(), engine.max_sequences());
  for (size_t i = 0; i < prompts.size(); ++i)
    sequences.push_back(SequenceState{engine.add_sequence(options.sampling), GenerationResult{prompts[i], {}, {}, "length"},
                                      StreamingDetokenizer(tokenizer), {}, 0, false});

  // Prefill: every prompt in one packed step; a token after each prompt's last position. Then each
  // step brings every live sequence's last token.
  std::vector<std::vector<int32_t>> next_input = prompts;
  std::vector<size_t> live(prompts.size());
  for (size_t i = 0; i < live.size(); ++i) live[i] = i;

  auto emit = [&](size_t index, SequenceState& sequence, size_t end) {
    if (end > sequence.emitted && on_text) on_text(index, std::string_view(sequence.decoded).substr(sequence.emitted, end - sequence.emitted));
    sequence.emitted = std::max(sequence.emitted, end);
  };

  while (!live.empty()) {
    std::vector<SequenceChunk> chunks;
    for (size_t index : live) chunks.push_back({sequences[index].id, next_input[index], true});
    const std::vector<int32_t> next_tokens = engine.step(chunks);
    std::vector<size_t> still_live;
    for (size_t n = 0; n < live.size(); ++n) {
      const size_t index = live[n];
      SequenceState& sequence = sequences[index];
      const int32_t token = next_tokens[n];
      sequence.result.output_ids.push_back(token);

      const bool is_eos = std::find(options.eos_token_ids.begin(), options.eos_token_ids.end(), token) !=
                          options.eos_token_ids.end();
      sequence.decoded += sequence.detokenizer.push(token);
      if (is_eos || int(sequence.result.output_ids.size()) >= options.max_new_tokens) {
        sequence.decoded += sequence.detokenizer.flush();
        sequence.finished = true;
        if (is_eos) sequence.result.finish_reason = "stop";
      }
      const size_t stop_at = stop_strings.find_stop(sequence.decoded);
      if (stop_at != std::string::npos) {
        sequence.decoded.resize(stop_at);
        sequence.finished = true;
        sequence.result.finish_reason = "stop";
      }
      emit(index, sequence, sequence.finished ? sequence.decoded.size() : stop_strings.safe_length(sequence.decoded));
      if (sequence.finished) {
        engine.remove_sequence(sequence.id);
        continue;
      }
      next_input[index] = {token};
      still_live.push_back(index);
    }
    live = std::move(still_live);
  }

  for (SequenceState& sequence : sequences) {
    sequence.result.text = std::move(sequence.decoded);
    results.push_back(std::move(sequence.result));
  }
  return results;
}

}  // namespace shardlm
