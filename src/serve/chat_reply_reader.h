// A chat reply as the server's parsers read it (--reasoning-parser, --tool-call-parser): the
// reasoning split out of its text, then tool calls read from the answer that follows. Streamed, each
// part goes out as it settles: reasoning up to a possible </think>, answer text up to where a call
// may begin; at the end the calls, or the held-back text if it held none.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "serve/reasoning_parser.h"
#include "serve/tool_call_parser.h"

namespace shardlm::serve {

struct ReplyParts {
  std::string reasoning;
  std::string content;
  std::vector<ToolCall> calls;
};

class ChatReplyReader {
 public:
  ChatReplyReader() = default;  // reads nothing: the reply is all content
  // `prompt` is where the rendered prompt leaves the reply (prompt_thinking).
  ChatReplyReader(std::optional<ReasoningFormat> reasoning, std::optional<ToolCallFormat> tool_calls,
                  PromptThinking prompt = PromptThinking::None)
      : reasoning_(reasoning), tool_calls_(tool_calls), prompt_(prompt) {}

  bool reads() const { return reasoning_ || tool_calls_; }
  // What settled of `text`, the reply so far, since the last call (calls only once it is finished).
  ReplyParts release(std::string_view text, bool finished);
  // A whole reply's parts.
  ReplyParts whole(std::string_view text) const;

 private:
  std::optional<ReasoningFormat> reasoning_;
  std::optional<ToolCallFormat> tool_calls_;
  PromptThinking prompt_ = PromptThinking::None;
  size_t reasoning_sent_ = 0, content_sent_ = 0;  // released so far: an end in `text`, a length of the answer
};

}  // namespace shardlm::serve
