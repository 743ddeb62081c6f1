#include "serve/openai_responses.h"

#include <fmt/format.h>

#include <algorithm>

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

size_t text_characters(std::string_view text) {
  // Every byte but a UTF-8 continuation byte starts a character.
  return size_t(std::count_if(text.begin(), text.end(), [](char byte) { return (static_cast<unsigned char>(byte) & 0xC0) != 0x80; }));
}

json logprobs_json(Endpoint endpoint, std::span<const TokenLogprobs> tokens, const Tokenizer& tokenizer, size_t text_offset) {
  auto text_of = [&](int32_t id) { return tokenizer.decode(std::span<const int32_t>(&id, 1)); };
  auto bytes_of = [](const std::string& text) {
    json bytes = json::array();
    for (unsigned char byte : text) bytes.push_back(int(byte));
    return bytes;
  };
  if (endpoint == Endpoint::Completions) {
    json texts = json::array(), token_logprobs = json::array(), top_logprobs = json::array(), offsets = json::array();
    for (const TokenLogprobs& each : tokens) {
      const std::string text = text_of(each.token);
      texts.push_back(text);
      offsets.push_back(text_offset);
      text_offset += text_characters(text);
      if (!each.logprobs) {
        token_logprobs.push_back(nullptr);
        top_logprobs.push_back(nullptr);
        continue;
      }
      token_logprobs.push_back(each.logprobs->logprob);
      json top = json::object();
      for (const TokenLogprob& alternative : each.logprobs->top) top[text_of(alternative.token)] = alternative.logprob;
      // As vLLM, the sampled token is listed among the alternatives even when it is not the likeliest.
      if (!top.contains(text)) top[text] = each.logprobs->logprob;
      top_logprobs.push_back(std::move(top));
    }
    return {{"tokens", texts}, {"token_logprobs", token_logprobs}, {"top_logprobs", top_logprobs}, {"text_offset", offsets}};
  }
  json content = json::array();
  for (const TokenLogprobs& each : tokens) {
    const std::string text = text_of(each.token);
    const SampledLogprobs& logprobs = each.logprobs.value();  // a chat reply echoes no prompt
    json top = json::array();
    for (const TokenLogprob& alternative : logprobs.top) {
      const std::string alternative_text = text_of(alternative.token);
      top.push_back({{"token", alternative_text}, {"logprob", alternative.logprob}, {"bytes", bytes_of(alternative_text)}});
    }
    content.push_back({{"token", text}, {"logprob", logprobs.logprob}, {"bytes", bytes_of(text)}, {"top_logprobs", top}});
  }
  return {{"content", content}};
}

json tool_calls_json(std::span<const ToolCall> calls, std::span<const std::string> ids, bool streamed) {
  json list = json::array();
  for (size_t i = 0; i < calls.size(); ++i) {
    json call = {{"id", ids[i]},
                 {"type", "function"},
                 {"function", {{"name", calls[i].name}, {"arguments", calls[i].arguments}}}};
    if (streamed) call["index"] = i;
    list.push_back(std::move(call));
  }
  return list;
}

json streamed_choice(Endpoint endpoint, size_t index, const std::string& text, const std::optional<std::string>& finish_reason,
                     const json& logprobs, const ChatExtras& extras) {
  json choice = {{"index", index}};
  if (endpoint == Endpoint::Completions) {
    choice["text"] = text;
  } else {
    // The closing chunk carries an empty delta, as OpenAI's does; a chunk of reasoning, no content.
    json delta = json::object();
    if (!text.empty() || (!finish_reason && extras.reasoning.empty())) delta["content"] = text;
    if (!extras.reasoning.empty()) delta["reasoning"] = delta["reasoning_content"] = extras.reasoning;
    if (!extras.tool_calls.is_null()) delta["tool_calls"] = extras.tool_calls;
    choice["delta"] = std::move(delta);
  }
  choice["logprobs"] = logprobs;
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

json whole_choice(Endpoint endpoint, size_t index, const std::string& text, const std::string& finish_reason,
                  const json& logprobs, const ChatExtras& extras) {
  json choice = {{"index", index}};
  if (endpoint == Endpoint::Completions) {
    choice["text"] = text;
  } else {
    // No answer beside calls or reasoning is null, as vLLM and OpenAI send it.
    const bool no_answer = text.empty() && (!extras.tool_calls.is_null() || !extras.reasoning.empty());
    json message = {{"role", "assistant"}, {"content", no_answer ? json(nullptr) : json(text)}};
    if (!extras.reasoning.empty()) message["reasoning"] = message["reasoning_content"] = extras.reasoning;
    if (!extras.tool_calls.is_null()) message["tool_calls"] = extras.tool_calls;
    choice["message"] = std::move(message);
  }
  choice["logprobs"] = logprobs;
  choice["finish_reason"] = finish_reason;
  return choice;
}

}  // namespace shardlm::serve
