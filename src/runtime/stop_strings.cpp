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

size_t partial_marker_at_end(std::string_view text, std::string_view marker) {
  if (marker.empty()) return 0;
  for (size_t length = std::min(text.size(), marker.size() - 1); length > 0; --length)
    if (marker.starts_with(text.substr(text.size() - length))) return length;
  return 0;
}

size_t StopStrings::find_stop(std::string_view text) const {
  size_t earliest = std::string_view::npos;
  for (const std::string& stop : stops_) earliest = std::min(earliest, text.find(stop));
  return earliest;
}

size_t StopStrings::safe_length(std::string_view text) const {
  size_t held = 0;
  for (const std::string& stop : stops_) held = std::max(held, partial_marker_at_end(text, stop));
  return text.size() - held;
}

}  // namespace shardlm
