#include "serve/reasoning_parser.h"

#include <algorithm>

#include "core/error.h"
#include "runtime/stop_strings.h"

namespace shardlm::serve {
namespace {

constexpr std::string_view kThinkOpen = "<think>";
constexpr std::string_view kThinkClose = "</think>";

}  // namespace

ReasoningFormat reasoning_format(const std::string& name) {
  if (name == "qwen3") return ReasoningFormat::Qwen3;
  if (name == "deepseek_r1") return ReasoningFormat::DeepSeekR1;
  fail("--reasoning-parser: no parser \"{}\" (qwen3: Qwen3; deepseek_r1: DeepSeek-R1 and QwQ)", name);
}

PromptThinking prompt_thinking(std::string_view prompt) {
  const size_t open = prompt.rfind(kThinkOpen);
  if (open == std::string_view::npos) return PromptThinking::None;
  return prompt.find(kThinkClose, open) == std::string_view::npos ? PromptThinking::Open : PromptThinking::Closed;
}

ReasoningBounds reasoning_bounds(ReasoningFormat format, PromptThinking prompt, std::string_view text, bool finished,
                                 size_t settled) {
  const bool opened = text.starts_with(kThinkOpen);
  // Until the reply is longer than "<think>", it may still be opening the block.
  if (!opened && !finished && kThinkOpen.starts_with(text)) return {};
  const bool reasoning_first = opened || prompt == PromptThinking::Open ||
                               (prompt == PromptThinking::None && format == ReasoningFormat::DeepSeekR1);
  if (!reasoning_first) return {0, 0, 0};
  const size_t begin = opened ? kThinkOpen.size() : 0;
  const size_t close = text.find(kThinkClose, std::max(begin, settled));
  if (close != std::string_view::npos) return {begin, close, close + kThinkClose.size()};
  if (finished) return {begin, text.size(), text.size()};
  return {begin, text.size() - partial_marker_at_end(text.substr(std::max(begin, settled)), kThinkClose), std::nullopt};
}

}  // namespace shardlm::serve
