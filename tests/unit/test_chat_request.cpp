// POST /v1/chat/completions bodies: what the chat template receives (text parts joined, tool-call
// arguments as objects, tools, vLLM's extensions), and every bad field refused with a 400 naming it.
#include <gtest/gtest.h>

#include <string>

#include "api_refusal.h"
#include "serve/chat_request.h"
#include "serve/sampling_defaults.h"

namespace shardlm::serve {
namespace {

ChatRequest parse(const std::string& body) { return parse_chat_request(body, "kjv"); }

std::pair<int, std::string> refusal(const std::string& body) { return refusal_of(parse, body); }

TEST(ChatRequest, MessagesReachTheTemplateAsGiven) {
  const ChatRequest request = parse(R"({"model": "kjv", "messages": [
      {"role": "system", "content": "Be brief."},
      {"role": "user", "content": "Hi", "name": "ann"}]})");
  ASSERT_EQ(request.messages.size(), 2u);
  EXPECT_EQ(request.messages[0]["role"], "system");
  EXPECT_EQ(request.messages[0]["content"], "Be brief.");
  EXPECT_EQ(request.messages[1]["name"], "ann");
  EXPECT_TRUE(request.tools.is_null());
  EXPECT_TRUE(request.add_generation_prompt);
  // No limit given: the server fills in what the context leaves.
  EXPECT_FALSE(request.generation.max_tokens.has_value());
  EXPECT_EQ(request.generation.sampling.temperature, 1.0f);
}

TEST(ChatRequest, TextPartsJoinWithNewlines) {
  const ChatRequest request = parse(R"({"model": "kjv", "messages": [{"role": "user", "content": [
      {"type": "text", "text": "first"}, {"type": "text", "text": "second"}]}]})");
  EXPECT_EQ(request.messages[0]["content"], "first\nsecond");
}

TEST(ChatRequest, ToolCallArgumentsBecomeObjectsAndKeepTheirOrder) {
  const ChatRequest request = parse(R"({"model": "kjv",
      "messages": [{"role": "user", "content": "weather?"},
                   {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function",
                        "function": {"name": "get", "arguments": "{\"zeta\": 1, \"alpha\": \"x\"}"}}]},
                   {"role": "tool", "tool_call_id": "c1", "content": "21C"}],
      "tools": [{"type": "function", "function": {"name": "get", "parameters": {"type": "object", "b": 1, "a": 2}}}]})");
  const auto& arguments = request.messages[1]["tool_calls"][0]["function"]["arguments"];
  ASSERT_TRUE(arguments.is_object());
  EXPECT_EQ(arguments.dump(), R"({"zeta":1,"alpha":"x"})");
  // What the server's own replies may carry (a model's non-object arguments), and empty text.
  for (const auto& [text, expected] : {std::pair{R"(\"x\")", R"("x")"}, std::pair{"", "{}"}}) {
    const ChatRequest back = parse_chat_request(std::string(R"({"model": "kjv", "messages": [{"role": "assistant", "tool_calls": )") +
                                                    R"([{"function": {"name": "f", "arguments": ")" + text + R"("}}]}]})",
                                                "kjv");
    EXPECT_EQ(back.messages[0]["tool_calls"][0]["function"]["arguments"].dump(), expected) << text;
  }
  EXPECT_TRUE(request.messages[1]["content"].is_null());
  ASSERT_TRUE(request.tools.is_array());
  EXPECT_EQ(request.tools[0]["function"]["parameters"].dump(), R"({"type":"object","b":1,"a":2})");
}

TEST(ChatRequest, ExtensionsAndLimits) {
  const ChatRequest request = parse(R"({"model": "kjv", "messages": [{"role": "user", "content": "x"}],
      "add_generation_prompt": false, "chat_template_kwargs": {"enable_thinking": false},
      "max_completion_tokens": 7, "temperature": 0, "stream": true, "logprobs": false})");
  EXPECT_FALSE(request.add_generation_prompt);
  EXPECT_EQ(request.template_kwargs["enable_thinking"], false);
  EXPECT_EQ(request.generation.max_tokens, std::optional<int>(7));
  EXPECT_EQ(request.generation.sampling.temperature, 0.0f);
  EXPECT_TRUE(request.generation.stream);
  EXPECT_EQ(request.generation.sampling.logprobs, -1);
  EXPECT_EQ(parse(R"({"model": "kjv", "messages": [{"role": "user", "content": "x"}], "logprobs": true,
      "top_logprobs": 3})").generation.sampling.logprobs, 3);
  EXPECT_EQ(parse(R"({"model": "kjv", "messages": [{"role": "user", "content": "x"}], "logprobs": true})")
                .generation.sampling.logprobs, 0);
}

// The server's defaults fill the sampling fields a chat request leaves out; the length stays the
// server's to choose (the context left, or generation_config.json's max_new_tokens).
TEST(ChatRequest, SamplingFieldsLeftOutTakeTheServersDefaults) {
  SamplingDefaults defaults;
  defaults.temperature = 0.7f;
  defaults.top_k = 20;
  defaults.default_max_tokens = 64;
  const ChatRequest left_out =
      parse_chat_request(R"({"model": "kjv", "messages": [{"role": "user", "content": "x"}]})", "kjv", defaults);
  EXPECT_EQ(left_out.generation.sampling.temperature, 0.7f);
  EXPECT_EQ(left_out.generation.sampling.top_k, 20);
  EXPECT_EQ(left_out.generation.sampling.top_p, 1.0f);
  EXPECT_FALSE(left_out.generation.max_tokens.has_value());
  const ChatRequest given = parse_chat_request(
      R"({"model": "kjv", "messages": [{"role": "user", "content": "x"}], "temperature": 1, "max_tokens": 100})", "kjv", defaults);
  EXPECT_EQ(given.generation.sampling.temperature, 1.0f);
  EXPECT_EQ(given.generation.max_tokens, std::optional<int>(100));  // a limit the request gives is its own
}

TEST(ChatRequest, BadFieldsAreNamed) {
  const std::string user = R"("messages": [{"role": "user", "content": "x"}])";
  EXPECT_EQ(refusal(R"({"model": "kjv"})"), std::make_pair(400, std::string("messages")));
  EXPECT_EQ(refusal(R"({"model": "kjv", "messages": []})"), std::make_pair(400, std::string("messages")));
  EXPECT_EQ(refusal(R"({"model": "other", )" + user + "}"), std::make_pair(400, std::string("model")));
  EXPECT_EQ(refusal(R"({"model": "kjv", "messages": [{"content": "x"}]})"), std::make_pair(400, std::string("messages[0].role")));
  EXPECT_EQ(refusal(R"({"model": "kjv", "messages": [{"role": "user", "content": 5}]})"),
            std::make_pair(400, std::string("messages[0].content")));
  EXPECT_EQ(refusal(R"({"model": "kjv", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]})"),
            std::make_pair(400, std::string("messages[0].content[0].type")));
  EXPECT_EQ(refusal(R"({"model": "kjv", "messages": [{"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": "not json"}}]}]})"),
            std::make_pair(400, std::string("messages[0].tool_calls[0].function.arguments")));
  EXPECT_EQ(refusal(R"({"model": "kjv", )" + user + R"(, "tools": {}})"), std::make_pair(400, std::string("tools")));
  EXPECT_EQ(refusal(R"({"model": "kjv", )" + user + R"(, "tool_choice": "required"})"), std::make_pair(400, std::string("tool_choice")));
  EXPECT_EQ(refusal(R"({"model": "kjv", )" + user + R"(, "max_completion_tokens": 0})"),
            std::make_pair(400, std::string("max_completion_tokens")));
  EXPECT_EQ(refusal(R"({"model": "kjv", )" + user + R"(, "logprobs": 2})"), std::make_pair(400, std::string("logprobs")));
  EXPECT_EQ(refusal(R"({"model": "kjv", )" + user + R"(, "top_logprobs": 2})"), std::make_pair(400, std::string("top_logprobs")));
  EXPECT_EQ(refusal(R"({"model": "kjv", )" + user + R"(, "logprobs": true, "top_logprobs": 21})"),
            std::make_pair(400, std::string("top_logprobs")));
  EXPECT_EQ(refusal(R"({"model": "kjv", )" + user + R"(, "echo": true})"), std::make_pair(400, std::string("echo")));
  EXPECT_EQ(refusal(R"({"model": "kjv", )" + user + R"(, "chat_template_kwargs": []})"),
            std::make_pair(400, std::string("chat_template_kwargs")));
  EXPECT_EQ(refusal(R"({"model": "kjv", )" + user + R"(, "response_format": {"type": "json_object"}})"),
            std::make_pair(400, std::string("response_format")));
  EXPECT_EQ(refusal("{\"model\": \"kjv\", \"messages\": [{\"role\": \"user\", \"content\": \"\xff\"}]}").first, 400);
  // Bounds checked while parsing: deep nesting (here and in tool-call arguments) and wide objects.
  const std::string deep = std::string(20000, '[') + std::string(20000, ']');
  EXPECT_EQ(refusal(R"({"model": "kjv", "messages": [{"role": "user", "content": "x", "extra": )" + deep + "}]}").first, 400);
  const std::string deep_arguments = std::string(20000, '[') + std::string(20000, ']');
  EXPECT_EQ(refusal(R"({"model": "kjv", "messages": [{"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": ")" +
                    deep_arguments + R"("}}]}]})"),
            std::make_pair(400, std::string("messages[0].tool_calls[0].function.arguments")));
  std::string wide = "{";
  for (int k = 0; k < 600; ++k) wide += (k ? ",\"k" : "\"k") + std::to_string(k) + "\": 0";
  wide += "}";
  EXPECT_EQ(refusal(R"({"model": "kjv", )" + user + R"(, "chat_template_kwargs": )" + wide + "}").first, 400);
  EXPECT_EQ(refusal(R"({"model": "kjv", )" + user + R"(, "response_format": {"type": 5}})"),
            std::make_pair(400, std::string("response_format")));
}

}  // namespace
}  // namespace shardlm::serve
