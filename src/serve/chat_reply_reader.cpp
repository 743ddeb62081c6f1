#include "serve/chat_reply_reader.h"

#include <algorithm>

namespace shardlm::serve {

ReplyParts ChatReplyReader::release(std::string_view text, bool finished) {
  ReplyParts released;
  size_t answer_begin = 0;
  if (reasoning_) {
    const ReasoningBounds bounds = reasoning_bounds(*reasoning_, prompt_, text, finished, reasoning_sent_);
    const size_t from = std::max(bounds.reasoning_begin, reasoning_sent_);
    if (bounds.reasoning_end > from) released.reasoning = std::string(text.substr(from, bounds.reasoning_end - from));
    reasoning_sent_ = std::max(reasoning_sent_, bounds.reasoning_end);
    if (!bounds.content_begin) return released;
    answer_begin = *bounds.content_begin;
  }
  const std::string_view answer = text.substr(answer_begin);
  size_t end = answer.size();
  if (tool_calls_) {
    if (finished) {
      ParsedReply reply = parse_tool_calls(*tool_calls_, answer);
      end = reply.content.size();
      released.calls = std::move(reply.calls);
    } else {
      end = streamable_content(*tool_calls_, answer, content_sent_);
    }
  }
  // The parsers only ever settle more of a growing reply, so this never takes back what was sent.
  end = std::max(end, content_sent_);
  released.content = std::string(answer.substr(content_sent_, end - content_sent_));
  content_sent_ = end;
  return released;
}

ReplyParts ChatReplyReader::whole(std::string_view text) const {
  ChatReplyReader fresh(reasoning_, tool_calls_, prompt_);
  return fresh.release(text, /*finished=*/true);
}

}  // namespace shardlm::serve
