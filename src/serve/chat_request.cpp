#include "serve/chat_request.h"

#include <fmt/format.h>

namespace shardlm::serve {
namespace {

// A message's content as a text-only template reads it: a string (text parts joined by newlines),
// or null where OpenAI allows none (an assistant turn that only calls tools).
RequestJson content_of(const RequestJson& content, const std::string& param) {
  if (content.is_null() || content.is_string()) return content;
  if (!content.is_array()) bad_field(param, param + " must be a string or a list of content parts");
  std::string joined;
  for (size_t j = 0; j < content.size(); ++j) {
    const RequestJson& part = content[j];
    const std::string part_param = fmt::format("{}[{}]", param, j);
    if (!part.is_object() || !part.contains("type") || !part.at("type").is_string())
      bad_field(part_param, part_param + " must be an object with a type");
    if (part.at("type") != "text")
      bad_field(part_param + ".type", fmt::format("{}.type: only text parts are supported, got \"{}\"", part_param,
                                                  text_field(part.at("type"), part_param + ".type")));
    if (!part.contains("text")) bad_field(part_param + ".text", part_param + ".text is required");
    if (j > 0) joined += '\n';
    joined += text_field(part.at("text"), part_param + ".text");
  }
  return joined;
}

// OpenAI sends a tool call's arguments as JSON text; templates expect the value (Transformers'
// convention, which vLLM follows by parsing them): any JSON, as the server's own replies may carry
// what a model wrote there, and empty text as an empty object, as vLLM takes it.
RequestJson tool_calls_of(const RequestJson& calls, const std::string& param) {
  if (!calls.is_array()) bad_field(param, param + " must be a list");
  RequestJson converted = calls;
  for (size_t k = 0; k < converted.size(); ++k) {
    RequestJson& call = converted[k];
    const std::string call_param = fmt::format("{}[{}]", param, k);
    if (!call.is_object() || !call.contains("function") || !call.at("function").is_object())
      bad_field(call_param, call_param + " must be an object with a function");
    RequestJson& function = call.at("function");
    if (!function.contains("name") || !function.at("name").is_string())
      bad_field(call_param + ".function.name", call_param + ".function.name must be a string");
    if (function.contains("arguments") && function.at("arguments").is_string()) {
      const std::string& text = function.at("arguments").get_ref<const std::string&>();
      function["arguments"] = text.empty() ? RequestJson::object() : parse_json(text, call_param + ".function.arguments");
    }
  }
  return converted;
}

RequestJson messages_of(const RequestJson& messages) {
  if (!messages.is_array() || messages.empty()) bad_field("messages", "messages must be a non-empty list");
  RequestJson converted = RequestJson::array();
  for (size_t i = 0; i < messages.size(); ++i) {
    const std::string param = fmt::format("messages[{}]", i);
    const RequestJson& message = messages[i];
    if (!message.is_object()) bad_field(param, param + " must be an object");
    if (!message.contains("role") || !message.at("role").is_string())
      bad_field(param + ".role", param + ".role must be a string");
    RequestJson copy = message;
    copy["content"] = content_of(message.contains("content") ? message.at("content") : RequestJson(), param + ".content");
    if (given(message, "tool_calls")) copy["tool_calls"] = tool_calls_of(message.at("tool_calls"), param + ".tool_calls");
    converted.push_back(std::move(copy));
  }
  return converted;
}

}  // namespace

ChatRequest parse_chat_request(std::string_view text, const std::string& served_model_name,
                               const SamplingDefaults& defaults) {
  const RequestJson body = parse_body(text);
  check_model(body, served_model_name);
  for (const char* field : {"messages", "tools", "chat_template_kwargs"})
    if (given(body, field)) check_utf8_throughout(body.at(field), field);
  ChatRequest request;
  if (!given(body, "messages")) bad_field("messages", "messages is required");
  request.messages = messages_of(body.at("messages"));
  if (given(body, "tools")) {
    const RequestJson& tools = body.at("tools");
    if (!tools.is_array()) bad_field("tools", "tools must be a list");
    for (size_t t = 0; t < tools.size(); ++t)
      if (!tools[t].is_object() || !tools[t].contains("function") || !tools[t].at("function").is_object())
        bad_field(fmt::format("tools[{}]", t), fmt::format("tools[{}] must be an object with a function", t));
    if (!tools.empty()) request.tools = tools;
  }
  if (given(body, "tool_choice")) {
    const RequestJson& choice = body.at("tool_choice");
    // Whether the model calls a tool is left to the model: forcing one ("required", a named
    // function) would take constrained decoding, which the engine does not have.
    if (!(choice == "auto" || choice == "none"))
      bad_field("tool_choice", "tool_choice: only \"auto\" and \"none\" are supported");
    request.tool_choice_none = choice == "none";
  }
  if (given(body, "add_generation_prompt")) {
    if (!body.at("add_generation_prompt").is_boolean())
      bad_field("add_generation_prompt", "add_generation_prompt must be a boolean");
    request.add_generation_prompt = body.at("add_generation_prompt").get<bool>();
  }
  if (given(body, "chat_template_kwargs")) {
    if (!body.at("chat_template_kwargs").is_object())
      bad_field("chat_template_kwargs", "chat_template_kwargs must be an object");
    request.template_kwargs = body.at("chat_template_kwargs");
  }
  if (given(body, "response_format") &&
      !(body.at("response_format").is_object() && body.at("response_format").contains("type") &&
        body.at("response_format").at("type") == "text"))
    bad_field("response_format", "response_format: only {\"type\": \"text\"} is supported");
  request.generation = parse_generation_fields(body, {"max_tokens", "max_completion_tokens"}, LogprobsField::flag, defaults);
  if (request.generation.echo) bad_field("echo", "echo is a completions field: a chat reply does not repeat the messages");
  return request;
}

}  // namespace shardlm::serve
