// Text generation: prefill every prompt, then decode one token per live sequence per step (the
// live sequences share each forward pass), until EOS, a stop string or max_new_tokens.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/engine.h"
#include "ops/sampler.h"
#include "tokenizer/tokenizer.h"

namespace shardlm {

struct GenerationOptions {
  int max_new_tokens = 128;
  SamplingParams sampling;
  std::vector<std::string> stop;      // stop strings
  std::vector<int32_t> eos_token_ids; // generation ends when one is produced (it is kept in output_ids)
};

struct GenerationResult {
  std::vector<int32_t> prompt_ids;
  std::vector<int32_t> output_ids;
  std::string text;                   // decoded output, cut before a stop string
  std::string finish_reason;          // "stop" (EOS or stop string) or "length"
};

// Receives text as it becomes final: (prompt index, piece).
using TextCallback = std::function<void(size_t, std::string_view)>;

// Runs the prompts as sequences of `engine` (which must have a free slot for each) and removes them
// when they end.
std::vector<GenerationResult> generate(Engine& engine, const Tokenizer& tokenizer,
                                       const std::vector<std::vector<int32_t>>& prompts,
                                       const GenerationOptions& options, const TextCallback& on_text = {});

}  // namespace shardlm
