// EXPECT_ERROR_NAMES(statement, "needle", ...): the statement throws shardlm::Error and its message
// contains every needle. For tests of messages meant for people, which must name what is at fault.
#pragma once

#include <gtest/gtest.h>

#include <string>

#include "core/error.h"

namespace shardlm::testing {

// Runs `action`, expects an Error, and returns its message ("" after recording a failure).
template <typename Action>
std::string error_message_of(Action&& action) {
  try {
    action();
  } catch (const Error& error) {
    return error.what();
  }
  ADD_FAILURE() << "no shardlm::Error thrown";
  return "";
}

}  // namespace shardlm::testing

#define EXPECT_ERROR_NAMES(statement, ...)                                                      \
  do {                                                                                          \
    const std::string message_ = ::shardlm::testing::error_message_of([&] { statement; });      \
    for (const char* needle_ : {__VA_ARGS__})                                                   \
      EXPECT_NE(message_.find(needle_), std::string::npos) << "'" << needle_ << "' not in: " << message_; \
  } while (0)
