// The server's request parsers (completions and chat completions): any body either parses or is
// refused with an ApiError (whose JSON body is always producible); no other exception, crash or
// sanitizer finding. The same bytes as a model's reply go through every pairing of the reasoning
// and tool-call parsers (a prompt can steer what a model writes): streamed in two pieces, the parts
// released add up to the whole reply's.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

#include "serve/api_error.h"
#include "serve/chat_request.h"
#include "serve/completion_request.h"
#include "serve/chat_reply_reader.h"

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
  using shardlm::serve::ReasoningFormat, shardlm::serve::ToolCallFormat;
  for (const std::optional<ReasoningFormat> reasoning : {std::optional<ReasoningFormat>(), std::optional(ReasoningFormat::Qwen3),
                                                         std::optional(ReasoningFormat::DeepSeekR1)}) {
    for (const std::optional<ToolCallFormat> tools : {std::optional<ToolCallFormat>(), std::optional(ToolCallFormat::Hermes),
                                                      std::optional(ToolCallFormat::Llama3Json), std::optional(ToolCallFormat::Mistral)}) {
      for (const auto prompt : {shardlm::serve::PromptThinking::None, shardlm::serve::PromptThinking::Open,
                                shardlm::serve::PromptThinking::Closed}) {
        shardlm::serve::ChatReplyReader reader(reasoning, tools, prompt);
        const shardlm::serve::ReplyParts whole = reader.whole(body);
        const shardlm::serve::ReplyParts first = reader.release(body.substr(0, body.size() / 2), false);
        const shardlm::serve::ReplyParts rest = reader.release(body, true);
        if (first.reasoning + rest.reasoning != whole.reasoning || first.content + rest.content != whole.content ||
            rest.calls.size() != whole.calls.size())
          __builtin_trap();
      }
    }
  }
  return 0;
}
