#include "serve/completion_request.h"

#include "serve/token_ids.h"

namespace shardlm::serve {
namespace {

std::vector<Prompt> prompts_of(const RequestJson& prompt) {
  if (prompt.is_string()) return {text_field(prompt, "prompt")};
  if (!prompt.is_array() || prompt.empty())
    bad_field("prompt", "prompt must be a string, a list of strings, a list of token ids or a list of such lists");
  if (prompt.front().is_number()) return {parse_token_ids(prompt, "prompt")};
  std::vector<Prompt> prompts;
  for (const RequestJson& each : prompt) {
    if (each.is_string()) prompts.emplace_back(text_field(each, "prompt"));
    else if (each.is_array() && !each.empty()) prompts.emplace_back(parse_token_ids(each, "prompt"));
    else bad_field("prompt", "prompt: each entry of a list must be a string or a non-empty list of token ids");
  }
  return prompts;
}

}  // namespace

CompletionRequest parse_completion_request(std::string_view text, const std::string& served_model_name,
                                           const SamplingDefaults& defaults) {
  const RequestJson body = parse_body(text);
  check_model(body, served_model_name);
  if (!given(body, "prompt")) bad_field("prompt", "prompt is required");
  CompletionRequest request;
  request.prompts = prompts_of(body.at("prompt"));
  request.generation = parse_generation_fields(body, {"max_tokens"}, LogprobsField::count, defaults);
  if (!request.generation.max_tokens) request.generation.max_tokens = 16;  // OpenAI's default for completions
  if (request.prompts.size() * size_t(request.generation.n) > kMaxChoices)
    bad_field("n", "a request may ask for at most " + std::to_string(kMaxChoices) + " choices (prompts x n), this one for " +
                       std::to_string(request.prompts.size() * size_t(request.generation.n)));
  return request;
}

}  // namespace shardlm::serve
