// Streaming a reply whose markup (<tool_call>, </think>) decides where its text goes: a text that
// ends in the first characters of a marker must hold them back until the next token shows whether
// the marker is complete.
#pragma once

#include <algorithm>
#include <cstddef>
#include <string_view>

namespace shardlm::serve {

// The length of the longest end of `text` that `marker` begins with, short of the whole marker.
inline size_t partial_marker_at_end(std::string_view text, std::string_view marker) {
  for (size_t length = std::min(text.size(), marker.size() - 1); length > 0; --length)
    if (marker.starts_with(text.substr(text.size() - length))) return length;
  return 0;
}

}  // namespace shardlm::serve
