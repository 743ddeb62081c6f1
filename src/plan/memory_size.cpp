// The number is read as a double and scaled before truncation, as Python's int(float(x) * unit)
// does in Accelerate, so "1.5GB" and "0.1GiB" give the same bytes in both.
#include "plan/memory_size.h"

#include <array>
#include <cctype>
#include <charconv>
#include <cmath>

#include "core/error.h"

namespace shardlm {
namespace {

struct Unit {
  std::string_view suffix;  // upper case
  double bytes;
  bool decimal;             // KB/MB/GB: a lowercase final "b" means bits
};

// Binary units first: "GIB" also ends in "IB", never in "GB", but "KB" must not catch "KIB".
constexpr std::array<Unit, 6> kUnits = {{
    {"GIB", 1024.0 * 1024.0 * 1024.0, false},
    {"MIB", 1024.0 * 1024.0, false},
    {"KIB", 1024.0, false},
    {"GB", 1e9, true},
    {"MB", 1e6, true},
    {"KB", 1e3, true},
}};

bool ends_with_upper(std::string_view text, std::string_view upper_suffix) {
  if (text.size() < upper_suffix.size()) return false;
  const std::string_view tail = text.substr(text.size() - upper_suffix.size());
  for (size_t i = 0; i < tail.size(); ++i)
    if (std::toupper(static_cast<unsigned char>(tail[i])) != upper_suffix[i]) return false;
  return true;
}

std::string_view trim(std::string_view text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front()))) text.remove_prefix(1);
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.remove_suffix(1);
  return text;
}

[[noreturn]] void fail_size(std::string_view text, std::string_view option, std::string_view why) {
  fail("{}: \"{}\" is not a memory size ({}); write bytes, or a number with KB, MB, GB, KiB, MiB or GiB, "
       "e.g. 20GiB",
       option, text, why);
}

// A plain decimal number: digits with an optional fraction and exponent. from_chars alone would
// also take "inf", "nan" and hex floats, which are no sizes.
bool parse_number(std::string_view text, double& value) {
  if (text.empty() || !(std::isdigit(static_cast<unsigned char>(text[0])) || text[0] == '.')) return false;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value, std::chars_format::general);
  return error == std::errc() && end == text.data() + text.size() && std::isfinite(value);
}

}  // namespace

int64_t parse_memory_size(std::string_view text, std::string_view option) {
  const std::string_view trimmed = trim(text);
  if (trimmed.empty()) fail_size(text, option, "empty");
  if (trimmed.front() == '-') fail_size(text, option, "negative");
  for (const Unit& unit : kUnits) {
    if (!ends_with_upper(trimmed, unit.suffix)) continue;
    double number = 0;
    if (!parse_number(trim(trimmed.substr(0, trimmed.size() - unit.suffix.size())), number))
      fail_size(text, option, "no number before the unit");
    const double bytes = std::trunc(number * unit.bytes);
    // 2^63 is exactly representable; anything at or above it does not fit in int64_t.
    if (bytes >= 9223372036854775808.0) fail_size(text, option, "too large");
    const bool bits = unit.decimal && trimmed.back() == 'b';
    return bits ? int64_t(bytes) / 8 : int64_t(bytes);
  }
  // No unit: a whole number of bytes. (Accelerate takes bytes only as a Python int; a command line
  // has no ints, so the digits stand for one.)
  int64_t bytes = 0;
  const auto [end, error] = std::from_chars(trimmed.data(), trimmed.data() + trimmed.size(), bytes);
  if (error == std::errc::result_out_of_range) fail_size(text, option, "too large");
  if (error != std::errc() || end != trimmed.data() + trimmed.size()) fail_size(text, option, "unknown unit");
  return bytes;
}

std::string format_memory_size(int64_t bytes) {
  constexpr std::array<std::string_view, 4> kBinaryUnits = {"KiB", "MiB", "GiB", "TiB"};
  if (bytes < 1024 && bytes > -1024) return fmt::format("{} B", bytes);
  double value = double(bytes);
  size_t unit = 0;
  value /= 1024.0;
  while (std::fabs(value) >= 1024.0 && unit + 1 < kBinaryUnits.size()) {
    value /= 1024.0;
    ++unit;
  }
  return fmt::format("{:.2f} {}", value, kBinaryUnits[unit]);
}

}  // namespace shardlm
