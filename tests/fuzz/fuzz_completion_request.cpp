// The server's request parser: any body either parses or is refused with an ApiError (whose JSON
// body is always producible); no other exception, crash or sanitizer finding.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "serve/api_error.h"
#include "serve/completion_request.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    shardlm::serve::parse_completion_request(std::string_view(reinterpret_cast<const char*>(data), size), "kjv");
  } catch (const shardlm::serve::ApiError& error) {
    (void)error.body_text();
  }
  return 0;
}
