// Bounds on what one render may build, so a hostile template (a chat template comes with a
// downloaded model) ends in an Error instead of exhausting memory, stack or time.
#pragma once

#include <cstddef>
#include <cstdint>

namespace shardlm::jinja {

inline constexpr size_t kMaxStringBytes = size_t(16) << 20;  // any one string, the output included
inline constexpr size_t kMaxArrayItems = size_t(1) << 20;    // any one array, range() included
inline constexpr int64_t kMaxSteps = int64_t(1) << 20;       // loop iterations and macro calls, all told
inline constexpr int kMaxCallDepth = 32;                     // nested macro calls
inline constexpr int kMaxNesting = 256;                      // lists and objects within each other
inline constexpr double kMaxRenderSeconds = 2.0;             // a render's wall-clock time

// Throws Error when a string or array built by `what` is over its bound.
void check_string_size(size_t bytes, const char* what);
void check_array_size(size_t items, const char* what);

}  // namespace shardlm::jinja
