// The server's request parsers (completions and chat completions): any body either parses or is
// refused with an ApiError (whose JSON body is always producible); no other exception, crash or
// sanitizer finding. The same bytes as a model's reply go through both tool-call parsers (a prompt
// can steer what a model writes): the content they keep is where the reply starts, and a stream
// never releases more than the reply holds.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "serve/api_error.h"
#include "serve/chat_request.h"
#include "serve/completion_request.h"
#include "serve/tool_call_parser.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  try {
    shardlm::serve::parse_completion_request(body, "kjv");
  } catch (const shardlm::serve::ApiError& error) {
    (void)error.body_text();
  }
  try {
    shardlm::serve::parse_chat_request(body, "kjv");
  } catch (const shardlm::serve::ApiError& error) {
    (void)error.body_text();
  }
  for (const auto format : {shardlm::serve::ToolCallFormat::Hermes, shardlm::serve::ToolCallFormat::Llama3Json}) {
    const shardlm::serve::ParsedReply reply = shardlm::serve::parse_tool_calls(format, body);
    if (!body.starts_with(reply.content)) __builtin_trap();
    if (shardlm::serve::streamable_content(format, body) > body.size()) __builtin_trap();
  }
  return 0;
}
