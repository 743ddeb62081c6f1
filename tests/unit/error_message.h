// Test support for messages meant for people, which must name the file or option at fault and the
// problem: error_message(action) runs an action that must throw shardlm::Error and returns its
// message; EXPECT_ERROR_NAMES(statement, "needle", ...) checks that the message holds every needle,
// and EXPECT_CONTAINS(text, part) that a text holds a part.
#pragma once

#include <gtest/gtest.h>

#include <string>

#include "core/error.h"

namespace shardlm {

template <typename Action>
std::string error_message(Action&& action) {
  try {
    action();
  } catch (const Error& error) {
    return error.what();
  }
  ADD_FAILURE() << "expected shardlm::Error";
  return "";
}

}  // namespace shardlm

#define EXPECT_ERROR_NAMES(statement, ...)                                                      \
  do {                                                                                          \
    const std::string message_ = ::shardlm::error_message([&] { statement; });                  \
    for (const char* needle_ : {__VA_ARGS__})                                                   \
      EXPECT_NE(message_.find(needle_), std::string::npos) << "'" << needle_ << "' not in: " << message_; \
  } while (0)

#define EXPECT_CONTAINS(text, part) EXPECT_NE(std::string(text).find(part), std::string::npos) << (text)
