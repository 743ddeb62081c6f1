#include "serve/tool_call_parser.h"

#include <algorithm>
#include <optional>

#include <fmt/format.h>

#include "core/error.h"
#include "runtime/stop_strings.h"
#include "serve/api_error.h"
#include "serve/request_fields.h"

namespace shardlm::serve {
namespace {

constexpr std::string_view kHermesOpen = "<tool_call>";
constexpr std::string_view kHermesClose = "</tool_call>";
constexpr std::string_view kPythonTag = "<|python_tag|>";
constexpr std::string_view kMistralCalls = "[TOOL_CALLS]";
constexpr std::string_view kMistralArgs = "[ARGS]";

// JSON within the bounds a request's JSON keeps (serve/request_fields.h), or none.
std::optional<RequestJson> parse_bounded(std::string_view text) {
  try {
    return parse_json(text, "a tool call");
  } catch (const ApiError&) {
    return std::nullopt;
  }
}

std::optional<RequestJson> parse_object(std::string_view text) {
  std::optional<RequestJson> value = parse_bounded(text);
  if (value && !value->is_object()) return std::nullopt;
  return value;
}

// A call's arguments as OpenAI sends them: JSON text (invalid UTF-8 from the model replaced).
std::string arguments_text(const RequestJson& value) {
  return value.dump(-1, ' ', false, RequestJson::error_handler_t::replace);
}

// {"name": string, and the first of `arguments_keys` present} as a call, its arguments the JSON
// text of that value (as vLLM sends whatever the model wrote there); anything else is not one.
std::optional<ToolCall> call_of(const RequestJson& object, std::initializer_list<const char*> arguments_keys) {
  if (!object.contains("name") || !object.at("name").is_string()) return std::nullopt;
  for (const char* key : arguments_keys)
    if (object.contains(key))
      return ToolCall{object.at("name").get<std::string>(), arguments_text(object.at(key))};
  return std::nullopt;
}

// Where the JSON object or list opening at text[begin] ends (just past its closing bracket), found
// in one pass over the brackets outside strings; npos when it never closes. (Mismatched brackets
// end it early or late; the parse that follows refuses them.)
size_t bracketed_end(std::string_view text, size_t begin) {
  int depth = 0;
  bool in_string = false;
  for (size_t i = begin; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') ++i;
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      ++depth;
    } else if ((c == '}' || c == ']') && --depth == 0) {
      return i + 1;
    }
  }
  return std::string_view::npos;
}

bool is_space(char c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r'; }

std::string_view trim(std::string_view text) {
  while (!text.empty() && is_space(text.front())) text.remove_prefix(1);
  while (!text.empty() && is_space(text.back())) text.remove_suffix(1);
  return text;
}

ParsedReply parse_hermes(std::string_view text) {
  const size_t first = text.find(kHermesOpen);
  if (first == std::string_view::npos) return {std::string(text), {}};
  std::vector<ToolCall> calls;
  for (size_t open = first; open != std::string_view::npos; open = text.find(kHermesOpen, open)) {
    const size_t body = open + kHermesOpen.size();
    // A reply cut off by max_tokens may leave its last call unclosed.
    const size_t close = text.find(kHermesClose, body);
    const std::optional<RequestJson> object = parse_object(trim(text.substr(body, close == std::string_view::npos ? text.npos : close - body)));
    const std::optional<ToolCall> call = object ? call_of(*object, {"arguments"}) : std::nullopt;
    if (!call) return {std::string(text), {}};
    calls.push_back(*call);
    if (close == std::string_view::npos) break;
    open = close + kHermesClose.size();
  }
  return {std::string(text.substr(0, first)), std::move(calls)};
}

// A llama3_json call may follow this much whitespace at most: a reply that opens with more is text,
// which keeps the look for its first character short while it streams.
constexpr size_t kMaxSpaceBeforeCall = 1024;

// The reply from its first character that is not whitespace; none when more than
// kMaxSpaceBeforeCall of whitespace open it.
std::optional<std::string_view> call_start(std::string_view text) {
  const size_t limit = std::min(text.size(), kMaxSpaceBeforeCall + 1);
  size_t first = 0;
  while (first < limit && is_space(text[first])) ++first;
  if (first > kMaxSpaceBeforeCall) return std::nullopt;
  return text.substr(first);
}

ParsedReply parse_llama3_json(std::string_view text) {
  const std::optional<std::string_view> start = call_start(text);
  if (!start) return {std::string(text), {}};
  std::string_view rest = *start;
  if (rest.starts_with(kPythonTag)) rest = trim(rest.substr(kPythonTag.size()));
  std::vector<ToolCall> calls;
  // Objects joined by ";", each found by its braces (arguments may hold ";"), each parsed once.
  while (true) {
    if (!rest.starts_with("{")) return {std::string(text), {}};
    const size_t end = bracketed_end(rest, 0);
    if (end == std::string_view::npos) return {std::string(text), {}};
    const std::optional<RequestJson> object = parse_object(rest.substr(0, end));
    const std::optional<ToolCall> call = object ? call_of(*object, {"arguments", "parameters"}) : std::nullopt;
    if (!call) return {std::string(text), {}};
    calls.push_back(*call);
    rest = trim(rest.substr(end));
    if (rest.empty()) return {"", std::move(calls)};
    if (!rest.starts_with(";")) return {std::string(text), {}};
    rest = trim(rest.substr(1));
    if (rest.empty()) return {"", std::move(calls)};
  }
}

// Calls after the first [TOOL_CALLS], in either way Mistral's tokenizers write them.
ParsedReply parse_mistral(std::string_view text) {
  const size_t first = text.find(kMistralCalls);
  if (first == std::string_view::npos) return {std::string(text), {}};
  const ParsedReply as_text = {std::string(text), {}};
  std::vector<ToolCall> calls;
  std::string_view rest = trim(text.substr(first + kMistralCalls.size()));
  if (rest.starts_with("[")) {
    // Mistral 7B v0.3, Mixtral: one JSON list of {"name", "arguments"}; as vLLM, whatever follows
    // the list is dropped and a call without arguments has {}.
    const size_t end = bracketed_end(rest, 0);
    const std::optional<RequestJson> list = end == std::string_view::npos ? std::nullopt : parse_bounded(rest.substr(0, end));
    if (!list || !list->is_array() || list->empty()) return as_text;
    for (const RequestJson& each : *list) {
      if (!each.is_object() || !each.contains("name") || !each.at("name").is_string()) return as_text;
      calls.push_back(call_of(each, {"arguments"}).value_or(ToolCall{each.at("name").get<std::string>(), "{}"}));
    }
    return {std::string(text.substr(0, first)), std::move(calls)};
  }
  // Tokenizers from v11 on: name[ARGS]{...} after each [TOOL_CALLS].
  while (true) {
    const size_t args = rest.find(kMistralArgs);
    if (args == std::string_view::npos) return as_text;
    const std::string_view name = trim(rest.substr(0, args));
    const std::string_view body = trim(rest.substr(args + kMistralArgs.size()));
    const size_t end = body.starts_with("{") ? bracketed_end(body, 0) : std::string_view::npos;
    const std::optional<RequestJson> arguments = end == std::string_view::npos ? std::nullopt : parse_object(body.substr(0, end));
    if (name.empty() || !arguments) return as_text;
    calls.push_back({std::string(name), arguments_text(*arguments)});
    rest = trim(body.substr(end));
    if (rest.empty()) return {std::string(text.substr(0, first)), std::move(calls)};
    if (!rest.starts_with(kMistralCalls)) return as_text;
    rest = trim(rest.substr(kMistralCalls.size()));
  }
}

}  // namespace

ToolCallFormat tool_call_format(const std::string& name) {
  if (name == "hermes") return ToolCallFormat::Hermes;
  if (name == "llama3_json") return ToolCallFormat::Llama3Json;
  if (name == "mistral") return ToolCallFormat::Mistral;
  fail("--tool-call-parser: no parser \"{}\" (hermes: Qwen2.5, Qwen3 and Hermes models; llama3_json: Llama 3.1 to "
       "3.3; mistral: Mistral and Mixtral)",
       name);
}

ParsedReply parse_tool_calls(ToolCallFormat format, std::string_view text) {
  switch (format) {
    case ToolCallFormat::Hermes: return parse_hermes(text);
    case ToolCallFormat::Llama3Json: return parse_llama3_json(text);
    case ToolCallFormat::Mistral: return parse_mistral(text);
  }
  return {std::string(text), {}};
}

std::string tool_call_id(ToolCallFormat format, uint64_t bits) {
  if (format != ToolCallFormat::Mistral) return fmt::format("call_{:016x}", bits);
  // Mistral's chat templates refuse any other tool_call_id than 9 letters and digits.
  constexpr std::string_view kAlphabet = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
  std::string id(9, '0');
  for (char& c : id) {
    c = kAlphabet[bits % kAlphabet.size()];
    bits /= kAlphabet.size();
  }
  return id;
}

size_t streamable_content(ToolCallFormat format, std::string_view text, size_t settled) {
  if (format != ToolCallFormat::Llama3Json) {
    const std::string_view marker = format == ToolCallFormat::Hermes ? kHermesOpen : kMistralCalls;
    const size_t open = text.find(marker, settled);
    return open != std::string_view::npos ? open : text.size() - partial_marker_at_end(text, marker);
  }
  // A llama3_json reply is a call or text from its first character on: wait until that shows.
  if (settled > 0) return text.size();
  const std::optional<std::string_view> start = call_start(text);
  if (!start) return text.size();
  if (start->empty() || start->starts_with("{") || start->starts_with(kPythonTag) || kPythonTag.starts_with(*start))
    return 0;
  return text.size();
}

}  // namespace shardlm::serve
