// A chat reply read by the server's parsers (serve/chat_reply_reader.h): reasoning split out as
// vLLM's qwen3 and deepseek_r1 parsers do, tool calls read from the answer after it, and, streamed
// a token at a time, the parts released add up to what the whole reply gives, never taking back
// text already sent.
#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <vector>

#include "error_message.h"
#include "serve/chat_reply_reader.h"

namespace shardlm::serve {
namespace {

ReplyParts whole(std::optional<ReasoningFormat> reasoning, std::optional<ToolCallFormat> tools, const std::string& text,
                 PromptThinking prompt = PromptThinking::None) {
  return ChatReplyReader(reasoning, tools, prompt).whole(text);
}

TEST(ChatReplyReader, Qwen3ReasoningIsTheOpeningThinkBlock) {
  const ReplyParts parts = whole(ReasoningFormat::Qwen3, std::nullopt, "<think>\nParis, in June.\n</think>\n\nIt is warm.");
  EXPECT_EQ(parts.reasoning, "\nParis, in June.\n");
  EXPECT_EQ(parts.content, "\n\nIt is warm.");  // as vLLM: what follows </think>, untrimmed
  // Thinking turned off (the template wrote the empty block): all answer, even a late </think>.
  EXPECT_EQ(whole(ReasoningFormat::Qwen3, std::nullopt, "It is warm. </think>").content, "It is warm. </think>");
  EXPECT_EQ(whole(ReasoningFormat::Qwen3, std::nullopt, "<thi").content, "<thi");
  // Cut off by max_tokens while thinking: all reasoning.
  const ReplyParts cut = whole(ReasoningFormat::Qwen3, std::nullopt, "<think>Paris is");
  EXPECT_EQ(cut.reasoning, "Paris is");
  EXPECT_EQ(cut.content, "");
}

TEST(ChatReplyReader, DeepSeekR1ReasonsUntilTheEndMarker) {
  const ReplyParts parts = whole(ReasoningFormat::DeepSeekR1, std::nullopt, "Paris, in June.</think>It is warm.");
  EXPECT_EQ(parts.reasoning, "Paris, in June.");
  EXPECT_EQ(parts.content, "It is warm.");
  EXPECT_EQ(whole(ReasoningFormat::DeepSeekR1, std::nullopt, "<think>a</think>b").reasoning, "a");
  const ReplyParts unclosed = whole(ReasoningFormat::DeepSeekR1, std::nullopt, "still thinking");
  EXPECT_EQ(unclosed.reasoning, "still thinking");
  EXPECT_EQ(unclosed.content, "");
}

// The rendered prompt decides first: a block it leaves open makes the reply start as reasoning
// (Qwen3's thinking models and DeepSeek-R1 write "<think>\n" into the generation prompt); one it
// closes (enable_thinking false) leaves the reply all answer, with either parser.
TEST(ChatReplyReader, ThePromptsOpenOrClosedBlockDecidesFirst) {
  EXPECT_EQ(prompt_thinking("<|im_start|>assistant\n"), PromptThinking::None);
  EXPECT_EQ(prompt_thinking("<|im_start|>assistant\n<think>\n"), PromptThinking::Open);
  EXPECT_EQ(prompt_thinking("<|im_start|>assistant\n<think>\n\n</think>\n\n"), PromptThinking::Closed);
  EXPECT_EQ(prompt_thinking("<think>a</think> b <think>\n"), PromptThinking::Open);
  for (const ReasoningFormat format : {ReasoningFormat::Qwen3, ReasoningFormat::DeepSeekR1}) {
    const ReplyParts opened = whole(format, std::nullopt, "Paris.</think>\n\nWarm.", PromptThinking::Open);
    EXPECT_EQ(opened.reasoning, "Paris.");
    EXPECT_EQ(opened.content, "\n\nWarm.");
    const ReplyParts closed = whole(format, std::nullopt, "Warm.", PromptThinking::Closed);
    EXPECT_EQ(closed.reasoning, "");
    EXPECT_EQ(closed.content, "Warm.");
  }
}

TEST(ChatReplyReader, ToolCallsComeFromTheAnswerAlone) {
  // A call written while thinking is reasoning, not a call.
  const ReplyParts parts = whole(ReasoningFormat::Qwen3, ToolCallFormat::Hermes,
                                 "<think>Maybe <tool_call>{\"name\": \"a\", \"arguments\": {}}</tool_call>?</think>"
                                 "Sure.<tool_call>{\"name\": \"b\", \"arguments\": {\"x\": 1}}</tool_call>");
  EXPECT_EQ(parts.reasoning, "Maybe <tool_call>{\"name\": \"a\", \"arguments\": {}}</tool_call>?");
  EXPECT_EQ(parts.content, "Sure.");
  ASSERT_EQ(parts.calls.size(), 1u);
  EXPECT_EQ(parts.calls[0].name, "b");
  EXPECT_EQ(parts.calls[0].arguments, R"({"x":1})");
}

// Fed one character at a time (a token can end anywhere), a reader releases reasoning and content
// that concatenate to the whole reply's, and calls only at the end.
TEST(ChatReplyReader, StreamedPartsAddUpToTheWholeReply) {
  struct Case {
    std::optional<ReasoningFormat> reasoning;
    std::optional<ToolCallFormat> tools;
    std::string text;
    PromptThinking prompt = PromptThinking::None;
  };
  const std::vector<Case> cases = {
      {ReasoningFormat::Qwen3, ToolCallFormat::Hermes,
       "<think>\nweather</thinking> in Paris\n</think>\n\nLet me <tool look.<tool_call>\n{\"name\": \"get\", "
       "\"arguments\": {\"city\": \"Paris\"}}\n</tool_call>"},
      {ReasoningFormat::Qwen3, std::nullopt, "<think>unclosed </thi"},
      {ReasoningFormat::Qwen3, ToolCallFormat::Llama3Json, "{\"name\": \"f\", \"parameters\": {}}"},
      {ReasoningFormat::DeepSeekR1, std::nullopt, "a < b </ c</think>answer </think> again"},
      {std::nullopt, ToolCallFormat::Hermes, "Text <tool_call>{not json}</tool_call> stays"},
      {std::nullopt, ToolCallFormat::Llama3Json, " {\"name\": \"f\", \"parameters\": {\"q\": 1}}; {\"name\": \"g\"}"},
      {ReasoningFormat::Qwen3, ToolCallFormat::Mistral, "Paris </th</think>Sure [TOOL_CALLS] [{\"name\": \"f\"}] x",
       PromptThinking::Open},
      {ReasoningFormat::DeepSeekR1, std::nullopt, "<thinking> is not </think>", PromptThinking::Closed},
  };
  for (const Case& c : cases) {
    const ReplyParts expected = whole(c.reasoning, c.tools, c.text, c.prompt);
    ChatReplyReader reader(c.reasoning, c.tools, c.prompt);
    std::string reasoning, content;
    std::vector<ToolCall> calls;
    for (size_t end = 1; end <= c.text.size(); ++end) {
      ReplyParts released = reader.release(std::string_view(c.text).substr(0, end), end == c.text.size());
      reasoning += released.reasoning;
      content += released.content;
      if (end < c.text.size()) EXPECT_TRUE(released.calls.empty()) << c.text;
      calls = std::move(released.calls);
    }
    EXPECT_EQ(reasoning, expected.reasoning) << c.text;
    EXPECT_EQ(content, expected.content) << c.text;
    ASSERT_EQ(calls.size(), expected.calls.size()) << c.text;
    for (size_t i = 0; i < calls.size(); ++i) EXPECT_EQ(calls[i].arguments, expected.calls[i].arguments) << c.text;
  }
}

TEST(ChatReplyReader, HoldsBackWhatMayBecomeAMarker) {
  ChatReplyReader reader(ReasoningFormat::Qwen3, ToolCallFormat::Hermes);
  EXPECT_EQ(reader.release("<thi", false).reasoning, "");  // may open the block
  EXPECT_EQ(reader.release("<think>Paris</th", false).reasoning, "Paris");
  const ReplyParts closed = reader.release("<think>Paris</think>Yes <tool", false);
  EXPECT_EQ(closed.reasoning, "");
  EXPECT_EQ(closed.content, "Yes ");
  EXPECT_EQ(reader.release("<think>Paris</think>Yes <tools>", false).content, "<tools>");
}

TEST(ChatReplyReader, UnknownReasoningParserIsNamed) {
  EXPECT_CONTAINS(error_message([] { reasoning_format("granite"); }), "--reasoning-parser: no parser \"granite\"");
}

}  // namespace
}  // namespace shardlm::serve
