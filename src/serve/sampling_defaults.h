// What a request gets for the sampling fields it leaves out. By default the model's
// generation_config.json decides where it sets them, as vLLM's `--generation-config auto` (its
// default) does: the checkpoint's authors chose them (Qwen3 samples at temperature 0.6, top_p 0.95,
// top_k 20; some set min_p or repetition_penalty). Otherwise, and for what the file leaves out, OpenAI's
// defaults: temperature 1, no top-p or top-k cut, no penalty. The file's max_new_tokens limits a chat reply that gives no max_tokens (completions
// take OpenAI's 16 first); a limit a request gives is its own, as in vLLM since early 2026.
#pragma once

#include <optional>
#include <string>

#include "io/generation_config.h"

namespace shardlm::serve {

struct SamplingDefaults {
  float temperature = 1.0f;
  float top_p = 1.0f;
  int top_k = 0;                  // 0: off
  float min_p = 0.0f;               // 0: off
  float repetition_penalty = 1.0f;  // 1: off
  std::optional<int> default_max_tokens;  // for a chat reply without max_tokens, within the context left

  // Those `config` sets, as vLLM takes them (do_sample is not read: a temperature in the file applies,
  // where Transformers' generate() with do_sample false would decode greedily).
  static SamplingDefaults from(const GenerationConfig& config);
  // "temperature 0.6, top_p 0.95, top_k 20" for what differs from OpenAI's defaults; "" when nothing does.
  std::string describe() const;
};

}  // namespace shardlm::serve
