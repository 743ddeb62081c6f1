// A reasoning model's thinking in a chat reply's text, split out as vLLM's --reasoning-parser does,
// so that the client gets it as the message's `reasoning` (and `reasoning_content`, its older name,
// which clients still read) and only the answer as `content`:
//   qwen3        a reply that opens with <think> reasons until </think> (Qwen3); one that does not
//                is all answer
//   deepseek_r1  a reply reasons until </think>, an opening <think> dropped, and all of it is
//                reasoning when </think> never comes (DeepSeek-R1, QwQ)
// The prompt decides first, as vLLM looks at it too: one whose last <think> is still open (Qwen3's
// thinking models, DeepSeek-R1 and QwQ write it into the generation prompt) makes the reply start
// as reasoning, with either parser; one that closes its last block (Qwen3 with enable_thinking
// false writes an empty one) leaves the reply all answer unless it opens a block itself.
// Tool calls are then read from the answer alone.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace shardlm::serve {

enum class ReasoningFormat { Qwen3, DeepSeekR1 };

// The format a --reasoning-parser name stands for; throws Error naming the option and the names.
ReasoningFormat reasoning_format(const std::string& name);

// Where the rendered prompt leaves the reply: inside a <think> block, after a closed one, or with
// none.
enum class PromptThinking { None, Open, Closed };
PromptThinking prompt_thinking(std::string_view prompt);

// Where a reply's reasoning and answer lie in its text so far: reasoning is [reasoning_begin,
// reasoning_end), as far as it is settled (a trailing "</thi" may still become the end marker);
// the answer starts at content_begin once that is known. Every bound only grows as text is added,
// so a stream can send each part as it settles. A finished reply is settled whole.
struct ReasoningBounds {
  size_t reasoning_begin = 0, reasoning_end = 0;
  std::optional<size_t> content_begin;
};

// `settled` is the reasoning_end an earlier call gave for a shorter text of the same reply (no end
// marker begins before it), so that a stream scans each character once.
ReasoningBounds reasoning_bounds(ReasoningFormat format, PromptThinking prompt, std::string_view text, bool finished,
                                 size_t settled = 0);

}  // namespace shardlm::serve
