// The server's request parsers (completions and chat completions): any body either parses or is
// refused with an ApiError (whose JSON body is always producible); no other exception, crash or
// sanitizer finding.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "serve/api_error.h"
#include "serve/chat_request.h"
#include "serve/completion_request.h"

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
  return 0;
}
