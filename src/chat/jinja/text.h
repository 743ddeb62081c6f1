// String operations shared by filters and string methods, on code points as Python's str works
// (a template's strings are valid UTF-8: sources are checked, and JSON strings are by parsing).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace shardlm::jinja::text {

std::vector<char32_t> code_points(std::string_view text);
std::string from_code_points(const std::vector<char32_t>& points);
// In UTF-16 code units, as JS counts (a character outside the BMP counts 2).
size_t length(std::string_view text);

// JS's whitespace (\s, String.prototype.trim): ASCII's, U+00A0, U+1680, U+2000-200A, U+2028/2029,
// U+202F, U+205F, U+3000 and U+FEFF.
bool is_js_whitespace(char32_t point);
// Where trailing JS whitespace starts.
size_t trailing_whitespace_start(std::string_view text);

std::string upper(std::string_view text);
std::string lower(std::string_view text);
// As @huggingface/jinja: the first character upper-cased, the rest left as they are.
std::string capitalize(std::string_view text);
// As @huggingface/jinja (/\b\w/g upper-cased): each ASCII word character that follows a non-word
// character or the start is upper-cased, the rest left as they are ("hELLO" -> "HELLO").
std::string title(std::string_view text);

// JS whitespace stripped from the left, the right or both.
std::string strip(std::string_view text, bool left, bool right);
// Python's str.split / rsplit: no separator splits on runs of whitespace and drops empty parts.
std::vector<std::string> split(std::string_view text, const std::optional<std::string>& separator, int64_t max_split,
                               bool from_right);
// Python's str.replace: `count` < 0 replaces every occurrence.
std::string replace(std::string_view text, std::string_view old, std::string_view replacement, int64_t count);

}  // namespace shardlm::jinja::text
