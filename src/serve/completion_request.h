// The body of POST /v1/completions, checked field by field against OpenAI's API (field names as the
// `openai` package's CompletionCreateParams): every error names its field. Fields this server does
// not act on yet (best_of, penalties) are refused by name rather than ignored.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "serve/request_fields.h"

namespace shardlm::serve {

// Text to tokenize, or token ids as given.
using Prompt = std::variant<std::string, std::vector<int32_t>>;

struct CompletionRequest {
  std::vector<Prompt> prompts;  // one choice each
  GenerationFields generation;
};

// Choices (prompts x n) one request may ask for: each is a sequence the engine runs.
inline constexpr size_t kMaxChoices = 1024;

// Throws ApiError (400) naming the field; `model` must be the served model's name. Sampling fields
// not given take `defaults`.
CompletionRequest parse_completion_request(std::string_view body, const std::string& served_model_name,
                                           const SamplingDefaults& defaults = {});

}  // namespace shardlm::serve
