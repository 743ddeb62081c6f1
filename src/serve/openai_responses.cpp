#include "serve/openai_responses.h"

#include <fmt/format.h>

namespace shardlm::serve {

using nlohmann::json;

std::string response_id(Endpoint endpoint, uint64_t number) {
  return fmt::format("{}-{}", endpoint == Endpoint::Completions ? "cmpl" : "chatcmpl", number);
}

json response_head(Endpoint endpoint, bool chunk, const std::string& id, int64_t created, const std::string& model) {
  const char* object = endpoint == Endpoint::Completions ? "text_completion"
                       : chunk                           ? "chat.completion.chunk"
                                                         : "chat.completion";
  return {{"id", id}, {"object", object}, {"created", created}, {"model", model}};
}

json streamed_choice(Endpoint endpoint, size_t index, const std::string& text, const std::optional<std::string>& finish_reason) {
  json choice = {{"index", index}};
  if (endpoint == Endpoint::Completions) {
    choice["text"] = text;
  } else {
    // The closing chunk carries an empty delta, as OpenAI's does.
    choice["delta"] = text.empty() && finish_reason ? json::object() : json{{"content", text}};
  }
  choice["logprobs"] = nullptr;
  choice["finish_reason"] = finish_reason ? json(*finish_reason) : json(nullptr);
  return choice;
}

std::optional<json> opening_choice(Endpoint endpoint, size_t index) {
  if (endpoint == Endpoint::Completions) return std::nullopt;
  return json{{"index", index},
              {"delta", {{"role", "assistant"}, {"content", ""}}},
              {"logprobs", nullptr},
              {"finish_reason", nullptr}};
}

json whole_choice(Endpoint endpoint, size_t index, const std::string& text, const std::string& finish_reason) {
  json choice = {{"index", index}};
  if (endpoint == Endpoint::Completions)
    choice["text"] = text;
  else
    choice["message"] = {{"role", "assistant"}, {"content", text}};
  choice["logprobs"] = nullptr;
  choice["finish_reason"] = finish_reason;
  return choice;
}

}  // namespace shardlm::serve
