// What a request gets for the sampling fields it leaves out. By default the model's
// generation_config.json decides where it sets them, as vLLM's `--generation-config auto` (its
// default) does: the checkpoint's authors chose them (Qwen3 samples at temperature 0.6, top_p 0.95,
// top_k 20). Otherwise, and for what the file leaves out, OpenAI's defaults: temperature 1, no top-p
// or top-k cut. The file's max_new_tokens caps every request's max_tokens.
#pragma once

#include <optional>
#include <string>

#include "io/generation_config.h"

namespace shardlm::serve {

struct SamplingDefaults {
  float temperature = 1.0f;
  float top_p = 1.0f;
  int top_k = 0;                  // 0: off
  std::optional<int> max_tokens;  // a cap on every request's max_tokens

  // Those `config` sets, as vLLM takes them (do_sample is not read: a temperature in the file applies).
  static SamplingDefaults from(const GenerationConfig& config);
  // "temperature 0.6, top_p 0.95, top_k 20" for what differs from OpenAI's defaults; "" when nothing does.
  std::string describe() const;
};

}  // namespace shardlm::serve
