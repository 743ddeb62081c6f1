// The Jinja engine on any template source: it parses and renders a chat with tools, or refuses with
// shardlm::Error; no other exception, crash, hang or sanitizer finding (the render bounds in
// chat/jinja/limits.h keep hostile loops and strings in check).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include <nlohmann/json.hpp>

#include "chat/jinja/template.h"
#include "core/error.h"

namespace {

const nlohmann::ordered_json& context() {
  static const nlohmann::ordered_json value = nlohmann::ordered_json::parse(R"({
    "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi ü 😀"},
                 {"role": "assistant", "content": null, "tool_calls": [{"id": "abcdefghi", "type": "function",
                   "function": {"name": "get", "arguments": {"city": "Paris", "days": 2}}}]},
                 {"role": "tool", "tool_call_id": "abcdefghi", "content": "{\"t\": 21.5}"}],
    "tools": [{"type": "function", "function": {"name": "get", "parameters": {"type": "object"}}}],
    "add_generation_prompt": true, "bos_token": "<s>", "eos_token": "</s>", "enable_thinking": false,
    "date_string": "26 Jul 2024"})");
  return value;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const shardlm::jinja::Template chat_template(std::string_view(reinterpret_cast<const char*>(data), size));
    (void)chat_template.render(context());
  } catch (const shardlm::Error&) {
  }
  return 0;
}
