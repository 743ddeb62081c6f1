#include "chat/jinja/text.h"

#include <algorithm>

#include <utf8proc.h>

#include "chat/jinja/limits.h"
#include "core/error.h"
#include "tokenizer/utf8.h"

namespace shardlm::jinja::text {

std::vector<char32_t> code_points(std::string_view text) {
  std::vector<char32_t> points;
  for (size_t position = 0; position < text.size();) points.push_back(utf8::decode_next(text, position));
  return points;
}

std::string from_code_points(const std::vector<char32_t>& points) {
  std::string text;
  for (char32_t point : points) utf8::append_codepoint(text, point);
  return text;
}

size_t length(std::string_view text) {
  size_t count = 0;
  for (const unsigned char byte : text) count += ((byte & 0xC0) != 0x80) + (byte >= 0xF0);
  return count;
}

bool is_js_whitespace(char32_t point) {
  return point == ' ' || (point >= 0x09 && point <= 0x0D) || point == 0xA0 || point == 0x1680 ||
         (point >= 0x2000 && point <= 0x200A) || point == 0x2028 || point == 0x2029 || point == 0x202F ||
         point == 0x205F || point == 0x3000 || point == 0xFEFF;
}

size_t trailing_whitespace_start(std::string_view text) {
  size_t end = text.size();
  while (end > 0) {
    size_t begin = end - 1;
    while (begin > 0 && (static_cast<unsigned char>(text[begin]) & 0xC0) == 0x80) --begin;
    size_t position = begin;
    if (!is_js_whitespace(utf8::decode_next(text, position))) break;
    end = begin;
  }
  return end;
}

namespace {

std::string map_case(std::string_view text, bool to_upper) {
  std::string out;
  for (size_t position = 0; position < text.size();) {
    const char32_t point = utf8::decode_next(text, position);
    const auto mapped = to_upper ? utf8proc_toupper(utf8proc_int32_t(point)) : utf8proc_tolower(utf8proc_int32_t(point));
    utf8::append_codepoint(out, char32_t(mapped));
  }
  return out;
}

bool is_space(char32_t point) { return is_js_whitespace(point); }

}  // namespace

std::string upper(std::string_view text) { return map_case(text, true); }
std::string lower(std::string_view text) { return map_case(text, false); }

std::string capitalize(std::string_view text) {
  if (text.empty()) return "";
  size_t first_end = 0;
  utf8::decode_next(text, first_end);
  return upper(text.substr(0, first_end)) + std::string(text.substr(first_end));
}

std::string title(std::string_view text) {
  auto word = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_'; };
  std::string out(text);
  for (size_t i = 0; i < out.size(); ++i)
    if (word(out[i]) && (i == 0 || !word(out[i - 1])) && out[i] >= 'a' && out[i] <= 'z') out[i] = char(out[i] - 'a' + 'A');
  return out;
}

std::string strip(std::string_view text, bool left, bool right) {
  const std::vector<char32_t> points = code_points(text);
  size_t begin = 0, end = points.size();
  if (left)
    while (begin < end && is_space(points[begin])) ++begin;
  if (right)
    while (end > begin && is_space(points[end - 1])) --end;
  return from_code_points(std::vector<char32_t>(points.begin() + long(begin), points.begin() + long(end)));
}

std::vector<std::string> split(std::string_view text, const std::optional<std::string>& separator, int64_t max_split,
                               bool from_right) {
  std::vector<std::string> parts;
  if (separator && separator->empty()) fail("split(): empty separator");
  if (!separator) {
    // Runs of whitespace separate; with a limit, the rest is kept whole (its inner whitespace too).
    const std::vector<char32_t> points = code_points(text);
    std::vector<std::pair<size_t, size_t>> words;  // [begin, end) in code points
    for (size_t i = 0; i < points.size();) {
      while (i < points.size() && is_space(points[i])) ++i;
      if (i == points.size()) break;
      size_t end = i;
      while (end < points.size() && !is_space(points[end])) ++end;
      check_array_size(words.size() + 1, "split");
      words.emplace_back(i, end);
      i = end;
    }
    auto slice = [&](size_t begin, size_t end) {
      return from_code_points(std::vector<char32_t>(points.begin() + long(begin), points.begin() + long(end)));
    };
    if (max_split < 0 || size_t(max_split) >= words.size()) {
      for (const auto& [begin, end] : words) parts.push_back(slice(begin, end));
    } else if (!from_right) {
      for (size_t i = 0; i < size_t(max_split); ++i) parts.push_back(slice(words[i].first, words[i].second));
      size_t rest_end = points.size();
      while (rest_end > 0 && is_space(points[rest_end - 1])) --rest_end;
      parts.push_back(slice(words[size_t(max_split)].first, rest_end));
    } else {
      const size_t kept = words.size() - size_t(max_split);
      size_t rest_begin = 0;
      while (rest_begin < points.size() && is_space(points[rest_begin])) ++rest_begin;
      parts.push_back(slice(rest_begin, words[kept - 1].second));
      for (size_t i = kept; i < words.size(); ++i) parts.push_back(slice(words[i].first, words[i].second));
    }
    return parts;
  }
  const std::string& sep = *separator;
  if (!from_right) {
    size_t start = 0;
    while (max_split < 0 || int64_t(parts.size()) < max_split) {
      const size_t found = text.find(sep, start);
      if (found == std::string_view::npos) break;
      check_array_size(parts.size() + 1, "split");
      parts.emplace_back(text.substr(start, found - start));
      start = found + sep.size();
    }
    parts.emplace_back(text.substr(start));
    return parts;
  }
  size_t end = text.size();
  std::vector<std::string> reversed;
  while (max_split < 0 || int64_t(reversed.size()) < max_split) {
    if (end < sep.size()) break;
    const size_t found = text.rfind(sep, end - sep.size());
    if (found == std::string_view::npos) break;
    check_array_size(reversed.size() + 1, "rsplit");
    reversed.emplace_back(text.substr(found + sep.size(), end - found - sep.size()));
    end = found;
  }
  reversed.emplace_back(text.substr(0, end));
  return std::vector<std::string>(reversed.rbegin(), reversed.rend());
}

std::string replace(std::string_view text, std::string_view old, std::string_view replacement, int64_t count) {
  // Sized before it is built: a replacement of every character by a long string is huge.
  size_t occurrences = 0;
  if (old.empty()) {
    occurrences = length(text) + 1;
  } else {
    for (size_t at = text.find(old); at != std::string_view::npos; at = text.find(old, at + old.size())) ++occurrences;
  }
  if (count >= 0) occurrences = std::min(occurrences, size_t(count));
  const long double bytes =
      (long double)text.size() + (long double)occurrences * ((long double)replacement.size() - (long double)old.size());
  if (bytes > (long double)kMaxStringBytes) check_string_size(kMaxStringBytes + 1, "replace");
  std::string out;
  if (old.empty()) {
    // Python inserts the replacement before every character and at the end.
    int64_t done = 0;
    for (size_t position = 0; position <= text.size();) {
      if (count < 0 || done < count) {
        out += replacement;
        ++done;
      }
      if (position == text.size()) break;
      const size_t begin = position;
      utf8::decode_next(text, position);
      out += text.substr(begin, position - begin);
    }
    return out;
  }
  size_t start = 0;
  int64_t done = 0;
  while (count < 0 || done < count) {
    const size_t found = text.find(old, start);
    if (found == std::string_view::npos) break;
    out += text.substr(start, found - start);
    out += replacement;
    start = found + old.size();
    ++done;
  }
  out += text.substr(start);
  return out;
}

}  // namespace shardlm::jinja::text
