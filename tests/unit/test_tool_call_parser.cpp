// Tool calls read from a chat reply's text (serve/tool_call_parser.h), in vLLM's hermes,
// llama3_json and mistral formats: calls with the text before them, markup that holds no well-formed call left
// as text, and, streaming, content released only where no call can begin.
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <string>

#include "error_message.h"
#include "serve/tool_call_parser.h"

namespace shardlm::serve {
namespace {

TEST(ToolCallParser, HermesCallsAfterText) {
  const ParsedReply reply = parse_tool_calls(
      ToolCallFormat::Hermes,
      "Let me look.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"units\": \"C\", \"city\": \"Paris\", \"days\": [1, 2]}}\n"
      "</tool_call>\n<tool_call>\n{\"name\": \"get_time\", \"arguments\": {}}\n</tool_call>");
  EXPECT_EQ(reply.content, "Let me look.\n");
  ASSERT_EQ(reply.calls.size(), 2u);
  EXPECT_EQ(reply.calls[0].name, "get_weather");
  EXPECT_EQ(reply.calls[0].arguments, R"({"units":"C","city":"Paris","days":[1,2]})");  // the model's key order
  EXPECT_EQ(reply.calls[1].name, "get_time");
  EXPECT_EQ(reply.calls[1].arguments, "{}");
}

TEST(ToolCallParser, HermesKeepsTextThatHoldsNoWellFormedCall) {
  for (const char* text : {"No tools needed.", "<tool_call>{\"name\": \"f\", \"arguments\": {\"a\": </tool_call>",
                           "<tool_call>[1, 2]</tool_call>", "<tool_call>{\"arguments\": {}}</tool_call>",
                           "<tool_call>{\"name\": \"f\"}</tool_call>"}) {
    const ParsedReply reply = parse_tool_calls(ToolCallFormat::Hermes, text);
    EXPECT_TRUE(reply.calls.empty()) << text;
    EXPECT_EQ(reply.content, text);
  }
  // Nested deeper than a request may be: text, not a stack overflow.
  const std::string deep = "<tool_call>{\"name\": \"f\", \"arguments\": " + std::string(100000, '[') + "}</tool_call>";
  EXPECT_TRUE(parse_tool_calls(ToolCallFormat::Hermes, deep).calls.empty());
  // Arguments that are not an object go out as the JSON the model wrote, as vLLM sends them.
  const ParsedReply text_arguments =
      parse_tool_calls(ToolCallFormat::Hermes, "<tool_call>{\"name\": \"f\", \"arguments\": \"x\"}</tool_call>");
  ASSERT_EQ(text_arguments.calls.size(), 1u);
  EXPECT_EQ(text_arguments.calls[0].arguments, "\"x\"");
  // A reply cut off by max_tokens after a whole object still makes the call.
  const ParsedReply unclosed = parse_tool_calls(ToolCallFormat::Hermes, "<tool_call>{\"name\": \"f\", \"arguments\": {}}");
  ASSERT_EQ(unclosed.calls.size(), 1u);
  EXPECT_EQ(unclosed.content, "");
}

TEST(ToolCallParser, Llama3JsonWholeRepliesAreCalls) {
  const ParsedReply one = parse_tool_calls(ToolCallFormat::Llama3Json,
                                           "<|python_tag|>{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\"}}");
  ASSERT_EQ(one.calls.size(), 1u);
  EXPECT_EQ(one.calls[0].name, "get_weather");
  EXPECT_EQ(one.calls[0].arguments, R"({"city":"Paris"})");
  EXPECT_EQ(one.content, "");
  // Two calls joined by ";", the first with a ";" and braces inside its arguments' strings, the
  // second with "arguments", which wins over "parameters" as in vLLM.
  const ParsedReply two = parse_tool_calls(
      ToolCallFormat::Llama3Json,
      " {\"name\": \"a\", \"parameters\": {\"q\": \"x; y} {\\\"\"}} ;{\"name\": \"b\", \"parameters\": 1, \"arguments\": {}};");
  ASSERT_EQ(two.calls.size(), 2u);
  EXPECT_EQ(two.calls[0].arguments, R"({"q":"x; y} {\""})");
  EXPECT_EQ(two.calls[1].name, "b");
  EXPECT_EQ(two.calls[1].arguments, "{}");
  // A call after a little whitespace is a call; after more than 1,024 characters of it, text (so a
  // stream need look no further for the reply's first character).
  const std::string call = "{\"name\": \"f\", \"parameters\": {}}";
  EXPECT_EQ(parse_tool_calls(ToolCallFormat::Llama3Json, std::string(1024, '\n') + call).calls.size(), 1u);
  EXPECT_TRUE(parse_tool_calls(ToolCallFormat::Llama3Json, std::string(1025, '\n') + call).calls.empty());
  EXPECT_EQ(streamable_content(ToolCallFormat::Llama3Json, std::string(1024, ' ')), 0u);
  EXPECT_EQ(streamable_content(ToolCallFormat::Llama3Json, std::string(1025, ' ')), 1025u);
  for (const char* text : {"The weather is fine.", "{\"city\": \"Paris\"}", "{\"name\": \"a\", \"parameters\": {}} and more",
                           "{\"name\": \"a\"}", "{\"name\": \"a\", \"parameters\": {}}; text", "{\"name\": \"a\", \"parameters\": {"}) {
    const ParsedReply reply = parse_tool_calls(ToolCallFormat::Llama3Json, text);
    EXPECT_TRUE(reply.calls.empty()) << text;
    EXPECT_EQ(reply.content, text);
  }
}

TEST(ToolCallParser, MistralCallsInBothOfItsForms) {
  // Mistral 7B v0.3 and Mixtral: a JSON list after [TOOL_CALLS].
  const ParsedReply list = parse_tool_calls(
      ToolCallFormat::Mistral,
      "Checking. [TOOL_CALLS] [{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}, "
      "{\"name\": \"get_time\", \"arguments\": {}}]");
  EXPECT_EQ(list.content, "Checking. ");
  ASSERT_EQ(list.calls.size(), 2u);
  EXPECT_EQ(list.calls[0].arguments, R"({"city":"Paris"})");
  EXPECT_EQ(list.calls[1].name, "get_time");
  // Tokenizers from v11 on: name[ARGS]{...} after each [TOOL_CALLS].
  const ParsedReply named = parse_tool_calls(
      ToolCallFormat::Mistral, "[TOOL_CALLS]get_weather[ARGS]{\"city\": \"Paris}\"}[TOOL_CALLS]get_time[ARGS]{}");
  EXPECT_EQ(named.content, "");
  ASSERT_EQ(named.calls.size(), 2u);
  EXPECT_EQ(named.calls[0].name, "get_weather");
  EXPECT_EQ(named.calls[0].arguments, R"({"city":"Paris}"})");
  EXPECT_EQ(named.calls[1].arguments, "{}");
  for (const char* text : {"No call.", "[TOOL_CALLS] []", "[TOOL_CALLS] [{\"arguments\": {}}]", "[TOOL_CALLS] {\"name\": \"f\"}",
                           "[TOOL_CALLS]f[ARGS][1]", "[TOOL_CALLS][ARGS]{}", "[TOOL_CALLS]f[ARGS]{} trailing text"}) {
    const ParsedReply reply = parse_tool_calls(ToolCallFormat::Mistral, text);
    EXPECT_TRUE(reply.calls.empty()) << text;
    EXPECT_EQ(reply.content, text);
  }
  // As vLLM: text after the list is dropped, and a call without arguments has {}.
  const ParsedReply lenient = parse_tool_calls(ToolCallFormat::Mistral, "[TOOL_CALLS] [{\"name\": \"f\"}] thanks");
  ASSERT_EQ(lenient.calls.size(), 1u);
  EXPECT_EQ(lenient.calls[0].arguments, "{}");
  EXPECT_EQ(streamable_content(ToolCallFormat::Mistral, "Checking. [TOOL_"), 10u);
  EXPECT_EQ(streamable_content(ToolCallFormat::Mistral, "Checking. [TOOL_CALLS] [{"), 10u);
}

TEST(ToolCallParser, CallIdsAreWhatEachFormatsTemplatesTakeBack) {
  EXPECT_EQ(tool_call_id(ToolCallFormat::Hermes, 0xabcdef), "call_0000000000abcdef");
  // Mistral's templates refuse an id that is not 9 letters and digits; different bits, different ids.
  for (const uint64_t bits : {uint64_t(0), uint64_t(61), ~uint64_t(0)}) {
    const std::string id = tool_call_id(ToolCallFormat::Mistral, bits);
    EXPECT_EQ(id.size(), 9u);
    EXPECT_TRUE(std::all_of(id.begin(), id.end(), [](char c) { return std::isalnum(static_cast<unsigned char>(c)); })) << id;
  }
  EXPECT_NE(tool_call_id(ToolCallFormat::Mistral, 1), tool_call_id(ToolCallFormat::Mistral, 2));
}

TEST(ToolCallParser, StreamsContentOnlyWhereNoCallCanBegin) {
  EXPECT_EQ(streamable_content(ToolCallFormat::Hermes, "Let me look."), 12u);
  EXPECT_EQ(streamable_content(ToolCallFormat::Hermes, "Let me look.<tool"), 12u);  // may become <tool_call>
  EXPECT_EQ(streamable_content(ToolCallFormat::Hermes, "Let me look.<tools>"), 19u);
  EXPECT_EQ(streamable_content(ToolCallFormat::Hermes, "Let me <tool_call>{\"na"), 7u);
  EXPECT_EQ(streamable_content(ToolCallFormat::Hermes, "a <"), 2u);
  EXPECT_EQ(streamable_content(ToolCallFormat::Llama3Json, ""), 0u);
  EXPECT_EQ(streamable_content(ToolCallFormat::Llama3Json, " {\"name"), 0u);
  EXPECT_EQ(streamable_content(ToolCallFormat::Llama3Json, "<|python"), 0u);
  EXPECT_EQ(streamable_content(ToolCallFormat::Llama3Json, "The weather"), 11u);
  // Whatever was streamed is the start of the content the whole reply parses to.
  const std::string reply = "Sure: <tool_call>{\"name\": \"f\", \"arguments\": {}}</tool_call>";
  for (size_t end = 0; end <= reply.size(); ++end) {
    const size_t streamed = streamable_content(ToolCallFormat::Hermes, std::string_view(reply).substr(0, end));
    EXPECT_LE(streamed, end);
    EXPECT_EQ(reply.substr(0, streamed), parse_tool_calls(ToolCallFormat::Hermes, reply).content.substr(0, streamed)) << end;
  }
}

TEST(ToolCallParser, UnknownParserIsNamed) {
  EXPECT_CONTAINS(error_message([] { tool_call_format("pythonic"); }), "--tool-call-parser: no parser \"pythonic\"");
}

}  // namespace
}  // namespace shardlm::serve
