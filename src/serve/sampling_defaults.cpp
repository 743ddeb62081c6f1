#include "serve/sampling_defaults.h"

#include <fmt/format.h>

#include <vector>

namespace shardlm::serve {

SamplingDefaults SamplingDefaults::from(const GenerationConfig& config) {
  SamplingDefaults defaults;
  if (config.temperature) defaults.temperature = *config.temperature;
  if (config.top_p) defaults.top_p = *config.top_p;
  if (config.top_k) defaults.top_k = *config.top_k;
  if (config.min_p) defaults.min_p = *config.min_p;
  if (config.repetition_penalty) defaults.repetition_penalty = *config.repetition_penalty;
  defaults.default_max_tokens = config.max_new_tokens;
  return defaults;
}

std::string SamplingDefaults::describe() const {
  const SamplingDefaults openai;
  std::vector<std::string> parts;
  if (temperature != openai.temperature) parts.push_back(fmt::format("temperature {}", temperature));
  if (top_p != openai.top_p) parts.push_back(fmt::format("top_p {}", top_p));
  if (top_k != openai.top_k) parts.push_back(fmt::format("top_k {}", top_k));
  if (min_p != openai.min_p) parts.push_back(fmt::format("min_p {}", min_p));
  if (repetition_penalty != openai.repetition_penalty)
    parts.push_back(fmt::format("repetition_penalty {}", repetition_penalty));
  if (default_max_tokens) parts.push_back(fmt::format("max_tokens {} for chat without one", *default_max_tokens));
  return fmt::format("{}", fmt::join(parts, ", "));
}

}  // namespace shardlm::serve
