// Stop-string matching over the decoded text (not over token ids), since a stop string can span
// several tokens or sit inside one.
#include "runtime/stop_strings.h"

#include <algorithm>

#include "core/error.h"

namespace shardlm {

StopStrings::StopStrings(std::vector<std::string> stops) : stops_(std::move(stops)) {
  for (const std::string& stop : stops_)
    if (stop.empty()) fail("--stop: a stop string must not be empty");
}

size_t StopStrings::find_stop(std::string_view text) const {
  size_t earliest = std::string_view::npos;
  for (const std::string& stop : stops_) earliest = std::min(earliest, text.find(stop));
  return earliest;
}

size_t StopStrings::safe_length(std::string_view text) const {
  size_t held = 0;
  for (const std::string& stop : stops_) {
    // The longest suffix of text that is a proper prefix of this stop string.
    for (size_t length = std::min(stop.size() - 1, text.size()); length > held; --length) {
      if (text.substr(text.size() - length) == std::string_view(stop).substr(0, length)) {
        held = length;
        break;
      }
    }
  }
  return text.size() - held;
}

}  // namespace shardlm
