// The one exception type the library throws. Messages name the file, option or tensor at fault,
// so the CLI can print them as they are and exit non-zero (library code never exits).
#pragma once

#include <stdexcept>
#include <string>

#include <fmt/format.h>

namespace shardlm {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Throws Error with a fmt-formatted message.
template <typename... Args>
[[noreturn]] void fail(fmt::format_string<Args...> format, Args&&... args) {
  throw Error(fmt::format(format, std::forward<Args>(args)...));
}

}  // namespace shardlm
