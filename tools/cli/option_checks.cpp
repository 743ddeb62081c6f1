// from_chars and strtod over the whole text: "1e12", "12abc" and values beyond int64 are refused
// here rather than truncated or wrapped by the conversion that follows.
#include "option_checks.h"

#include <fmt/core.h>

#include <charconv>
#include <cmath>
#include <cstdlib>

namespace shardlm::cli {

CLI::Validator integer_in(int64_t min, int64_t max, const std::string& range_note) {
  const std::string expected = fmt::format("an integer from {} to {}{}", min, max,
                                           range_note.empty() ? "" : " (" + range_note + ")");
  return CLI::Validator(
      [min, max, expected](std::string& text) -> std::string {
        int64_t value = 0;
        const char* last = text.data() + text.size();
        const auto [end, error] = std::from_chars(text.data(), last, value);
        if (error != std::errc() || end != last || value < min || value > max)
          return fmt::format("expected {}, got \"{}\"", expected, text);
        return "";
      },
      fmt::format("INT in {}..{}", min, max));
}

CLI::Validator finite_number() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        char* end = nullptr;
        const double value = std::strtod(text.c_str(), &end);
        if (text.empty() || end != text.c_str() + text.size() || !std::isfinite(value))
          return fmt::format("expected a number, got \"{}\"", text);
        return "";
      },
      "NUMBER");
}

}  // namespace shardlm::cli
