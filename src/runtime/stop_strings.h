// Stop strings for generation: finds the first stop string in the text produced so far, and says
// how much of the text is safe to stream (text that could still turn into a stop string is held).
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace shardlm {

// The length of the longest end of `text` that `marker` begins with, short of the whole marker:
// text a stream holds back, since the next token may complete the marker (a stop string, or a
// reply parser's <tool_call> or </think>).
size_t partial_marker_at_end(std::string_view text, std::string_view marker);

class StopStrings {
 public:
  explicit StopStrings(std::vector<std::string> stops);

  // Position of the earliest stop string in text, or npos.
  size_t find_stop(std::string_view text) const;
  // Length of the prefix of text that no stop string can still begin in.
  size_t safe_length(std::string_view text) const;

 private:
  std::vector<std::string> stops_;
};

}  // namespace shardlm
