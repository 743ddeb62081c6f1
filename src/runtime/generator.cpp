// The generation loop. Each sequence keeps its own output state (detokenizer, stop strings); a
// step packs one row per live sequence into a single forward pass so the weights are read once per
// step.
#include "runtime/generator.h"

#include <optional>

#include "core/error.h"
#include "runtime/sequence_output.h"
#include "runtime/stop_strings.h"

namespace shardlm {

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
  for (size_t i = 0; i < prompts.size(); ++i) {
    if (prompts[i].empty()) fail("prompt {} has no tokens: nothing to condition generation on", i);
    const int64_t needed = int64_t(prompts[i].size()) + options.max_new_tokens;
    if (needed > max_positions)
      fail("prompt of {} tokens plus --max-new-tokens {} exceeds the model's max_position_embeddings {}",
           prompts[i].size(), options.max_new_tokens, max_positions);
  }
  if (prompts.size() > size_t(engine.max_sequences()))
    fail("{} prompts, but the engine holds {} sequences at once", prompts.size(), engine.max_sequences());
  std::vector<int> ids;
  std::vector<std::optional<SequenceOutput>> outputs;
  for (size_t i = 0; i < prompts.size(); ++i) {
    ids.push_back(engine.add_sequence(options.sampling));
    outputs.emplace_back(std::in_place, tokenizer, stop_strings, options.eos_token_ids, options.max_new_tokens);
  }

  // Prefill: every prompt in one packed step; a token after each prompt's last position. Then each
  // step brings every live sequence's last token.
  std::vector<std::vector<int32_t>> next_input = prompts;
  std::vector<size_t> live(prompts.size());
  for (size_t i = 0; i < live.size(); ++i) live[i] = i;
  while (!live.empty()) {
    std::vector<SequenceChunk> chunks;
    for (size_t index : live) chunks.push_back({ids[index], next_input[index], true});
    const std::vector<int32_t> next_tokens = engine.step(chunks);
    std::vector<size_t> still_live;
    for (size_t n = 0; n < live.size(); ++n) {
      const size_t index = live[n];
      SequenceOutput& output = *outputs[index];
      const std::string piece = output.push(next_tokens[n]);
      if (!piece.empty() && on_text) on_text(index, piece);
      if (output.finished()) {
        engine.remove_sequence(ids[index]);
        continue;
      }
      next_input[index] = {next_tokens[n]};
      still_live.push_back(index);
    }
    live = std::move(still_live);
  }

  for (size_t i = 0; i < prompts.size(); ++i) {
    const SequenceOutput& output = *outputs[i];
    results.push_back({prompts[i], output.tokens(), std::string(output.text()), output.finish_reason()});
  }
  return results;
}

}  // namespace shardlm
