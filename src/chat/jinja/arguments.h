// Reads a built-in's arguments the way Python binds them: each parameter by position or by keyword,
// with a default when absent; an argument nobody asked for is an error naming the function.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "chat/jinja/value.h"

namespace shardlm::jinja {

class ArgumentReader {
 public:
  ArgumentReader(std::string_view function, const CallArguments& arguments);
  // The next parameter: the next positional argument, else the keyword `name`, else `fallback`.
  Value take(std::string_view name, Value fallback = Value());
  // Throws Error when an argument was given that no take() read.
  void finish() const;

 private:
  std::string function_;
  const CallArguments& arguments_;
  size_t next_positional_ = 0;
  std::vector<bool> keyword_read_;
};

// Throws Error when `value` is not a string / integer; `what` names it in the message.
std::string expect_string(const Value& value, std::string_view what);
int64_t expect_integer(const Value& value, std::string_view what);

}  // namespace shardlm::jinja
