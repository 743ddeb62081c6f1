// Tool calls in a chat reply's text, as vLLM's --tool-call-parser reads them, so that a client of
// `shardlm serve --enable-auto-tool-choice --tool-call-parser NAME` gets OpenAI's `tool_calls`
// instead of the markup its model writes:
//   hermes       <tool_call>{"name": ..., "arguments": {...}}</tool_call>, one or more, after any
//                text (Qwen2.5, Qwen3, Hermes); the text before the first is the reply's content
//   llama3_json  a reply that is one JSON object {"name": ..., "parameters": {...}} (or several
//                joined by ";"), optionally after <|python_tag|> (Llama 3.1 to 3.3)
//   mistral      [TOOL_CALLS] then a JSON list of {"name": ..., "arguments": {...}} (Mistral 7B
//                v0.3, Mixtral), or name[ARGS]{...} after each [TOOL_CALLS] (tokenizers from v11 on),
//                after any text; [TOOL_CALLS] is a special token, so the reply must keep those
//                (the server asks for it)
// A reply whose markup does not hold well-formed calls stays text, as vLLM leaves it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace shardlm::serve {

enum class ToolCallFormat { Hermes, Llama3Json, Mistral };

// The format a --tool-call-parser name stands for; throws Error naming the option and the names.
ToolCallFormat tool_call_format(const std::string& name);

struct ToolCall {
  std::string name;
  std::string arguments;  // JSON text of an object, as OpenAI sends function.arguments
};

struct ParsedReply {
  std::string content;  // the text that is not a call (the whole text when there are none)
  std::vector<ToolCall> calls;
};

ParsedReply parse_tool_calls(ToolCallFormat format, std::string_view text);

// A call's id from 64 random bits: "call_" and 16 hex digits, or for mistral the 9 letters and
// digits its chat templates require when the call comes back in the conversation.
std::string tool_call_id(ToolCallFormat format, uint64_t bits);

// How much of a reply so far may stream out as content: everything before where a call begins or
// might still begin (a held-back "<tool" could grow into "<tool_call>"). The rest waits for the
// end of the reply, when parse_tool_calls decides. `settled` is what an earlier call returned for
// a shorter text of the same reply (no call begins before it), so a stream scans each character
// once rather than the whole reply at every token.
size_t streamable_content(ToolCallFormat format, std::string_view text, size_t settled = 0);

}  // namespace shardlm::serve
