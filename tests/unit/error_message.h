// Test support: runs an action that must throw shardlm::Error and returns its message, so tests can
// check that the message names the file or option and the problem.
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
