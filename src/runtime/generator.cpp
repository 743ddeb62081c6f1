// The generation loop. Each sequence keeps its own detokenizer and stop-string state; a step packs
// one row per live sequence into a single forward pass so the weights are read once per step.
#include "runtime/generator.h"

#include <algorithm>

#include "core/error.h"
#include "runtime/stop_strings.h"

namespace shardlm {
namespace {

struct SequenceState {
  GenerationResult result;
  StreamingDetokenizer detokenizer;
  std::string decoded;   // everything the detokenizer has released
  size_t emitted = 0;    // bytes of `decoded` already passed to the callback
  bool finished = false;
};

}  // namespace

std::vector<GenerationResult> generate(SequenceRunner& runner, const Tokenizer& tokenizer,
                                       const std::vector<std::vector<int32_t>>& prompts,
                                       const GenerationOptions& options, const TextCallback& on_text) {
  if (options.max_new_tokens < 0) fail("--max-new-tokens must be >= 0, got {}", options.max_new_tokens);
  const StopStrings stop_strings(options.stop);
  std::vector<GenerationResult> results;
  if (options.max_new_tokens == 0) {
    for (const std::vector<int32_t>& prompt : prompts) results.push_back({prompt, {}, {}, "length"});
    return results;
  }
  const int64_t max_positions = runner.config().max_position_embeddings;

  std::vector<SequenceState> sequences;
  sequences.reserve(prompts.size());
  int64_t capacity = 0;
  for (size_t i = 0; i < prompts.size(); ++i) {
    if (prompts[i].empty()) fail("prompt {} has no tokens: nothing to condition generation on", i);
    const int64_t needed = int64_t(prompts[i].size()) + options.max_new_tokens;
    if (needed > max_positions)
      fail("prompt of {} tokens plus --max-new-tokens {} exceeds the model's max_position_embeddings {}",
           prompts[i].size(), options.max_new_tokens, max_positions);
    capacity = std::max(capacity, needed);
    sequences.push_back(SequenceState{GenerationResult{prompts[i], {}, {}, "length"}, StreamingDetokenizer(tokenizer),
                                      {}, 0, false});
  }
  runner.begin(int(prompts.size()), capacity, options.sampling);

  // Prefill: every prompt's rows in one packed batch; logits only at each prompt's last position.
  std::vector<TokenRow> rows;
  for (size_t i = 0; i < prompts.size(); ++i)
    for (size_t position = 0; position < prompts[i].size(); ++position)
      rows.push_back({int(i), int64_t(position), prompts[i][position], position + 1 == prompts[i].size()});

  auto emit = [&](size_t index, SequenceState& sequence, size_t end) {
    if (end > sequence.emitted && on_text) on_text(index, std::string_view(sequence.decoded).substr(sequence.emitted, end - sequence.emitted));
    sequence.emitted = std::max(sequence.emitted, end);
  };

  while (!rows.empty()) {
    const std::vector<int32_t> next_tokens = runner.step(rows);
    std::vector<TokenRow> next_rows;
    size_t next_token = 0;
    for (const TokenRow& row : rows) {
      if (!row.wants_logits) continue;
      SequenceState& sequence = sequences[size_t(row.sequence)];
      const int32_t token = next_tokens[next_token++];
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
      emit(size_t(row.sequence), sequence,
           sequence.finished ? sequence.decoded.size() : stop_strings.safe_length(sequence.decoded));
      if (!sequence.finished) next_rows.push_back({row.sequence, row.position + 1, token, true});
    }
    rows = std::move(next_rows);
  }

  for (SequenceState& sequence : sequences) {
    sequence.result.text = std::move(sequence.decoded);
    results.push_back(std::move(sequence.result));
  }
  return results;
}

}  // namespace shardlm
