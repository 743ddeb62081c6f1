// PCRE2 wrapper for pre-tokenizer and normalizer patterns. Matching uses the JIT with a per-thread JIT
// stack; if a pathological input exhausts it we rerun the same search in the interpreter, which keeps
// its backtracking state on the heap, rather than fail the encode.
#include "tokenizer/regex.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "core/error.h"
#include "tokenizer/utf8.h"

namespace shardlm {
namespace {

// Oniguruma's \s: the White_Space property. Written as class contents so it can go inside [...] too.
constexpr std::string_view kWhiteSpaceClassBody = "\\t-\\r \\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}";
constexpr std::string_view kHexDigitClassBody = "0-9A-Fa-f";
// Everything but hex digits, as ranges, for \H inside a class.
constexpr std::string_view kNonHexDigitClassBody = "\\x{0}-/:-@G-`g-\\x{10FFFF}";

struct MatchResources {
  pcre2_match_context* context = nullptr;
  pcre2_jit_stack* jit_stack = nullptr;
  MatchResources() {
    context = pcre2_match_context_create(nullptr);
    jit_stack = pcre2_jit_stack_create(32 * 1024, 4 * 1024 * 1024, nullptr);
    if (context && jit_stack) pcre2_jit_stack_assign(context, nullptr, jit_stack);
  }
  ~MatchResources() {
    pcre2_jit_stack_free(jit_stack);
    pcre2_match_context_free(context);
  }
};

// A JIT stack may only be used by one thread at a time, so each thread owns one.
MatchResources& thread_match_resources() {
  thread_local MatchResources resources;
  return resources;
}

std::string pcre2_message(int error_code) {
  PCRE2_UCHAR buffer[256];
  pcre2_get_error_message(error_code, buffer, sizeof buffer);
  return reinterpret_cast<const char*>(buffer);
}

}  // namespace

std::string translate_oniguruma_pattern(std::string_view pattern) {
  std::string out;
  out.reserve(pattern.size() + 64);
  // The replacement for an escape: class contents inside [...], a whole class outside.
  const auto append_set = [&](bool in_class, bool negated, std::string_view body, std::string_view complement_body) {
    if (in_class) {
      out += negated ? complement_body : body;
    } else {
      out += negated ? "[^" : "[";
      out += body;
      out += ']';
    }
  };
  int class_depth = 0;
  for (size_t i = 0; i < pattern.size(); ++i) {
    const char c = pattern[i];
    if (c == '\\' && i + 1 < pattern.size()) {
      const char escaped = pattern[++i];
      const bool in_class = class_depth > 0;
      if (escaped == 's' || (escaped == 'S' && !in_class)) {
        append_set(in_class, escaped == 'S', kWhiteSpaceClassBody, {});
      } else if (escaped == 'h' || escaped == 'H') {
        append_set(in_class, escaped == 'H', kHexDigitClassBody, kNonHexDigitClassBody);
      } else {
        // \S inside a class stays PCRE2's: a negated set cannot be spliced in, and it differs only at U+180E.
        out += '\\';
        out += escaped;
      }
      continue;
    }
    if (c == '[') {
      ++class_depth;
      out += c;
      // A ']' right after '[' or '[^' is a literal member, not the end of the class.
      if (i + 1 < pattern.size() && pattern[i + 1] == '^') out += pattern[++i];
      if (i + 1 < pattern.size() && pattern[i + 1] == ']') out += pattern[++i];
      continue;
    }
    if (c == ']' && class_depth > 0) --class_depth;
    out += c;
  }
  return out;
}

Regex Regex::compile(std::string_view pattern, std::string_view where) {
  const std::string translated = translate_oniguruma_pattern(pattern);
  int error_code = 0;
  PCRE2_SIZE error_offset = 0;
  // MULTILINE: Oniguruma's default (Ruby) syntax makes ^ and $ line anchors.
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(translated.data()), translated.size(),
                                   PCRE2_UTF | PCRE2_UCP | PCRE2_MULTILINE, &error_code, &error_offset, nullptr);
  if (!code) fail("{}: invalid regex \"{}\": {} at offset {}", where, pattern, pcre2_message(error_code), error_offset);
  // Without JIT support pcre2_match falls back to the interpreter, so a JIT failure is not an error.
  pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
  Regex regex;
  regex.code_ = std::shared_ptr<pcre2_real_code_8>(code, pcre2_code_free);
  return regex;
}

Regex Regex::literal(std::string_view literal, std::string_view where) {
  // \Q...\E quotes everything except a literal "\E", which has to be spliced in outside the quote.
  std::string pattern = "\\Q";
  for (size_t i = 0; i < literal.size(); ++i) {
    if (literal.compare(i, 2, "\\E") == 0) {
      pattern += "\\E\\\\E\\Q";
      ++i;
    } else {
      pattern += literal[i];
    }
  }
  pattern += "\\E";
  return compile(pattern, where);
}

std::vector<std::pair<size_t, size_t>> Regex::find_all(std::string_view text) const {
  std::vector<std::pair<size_t, size_t>> matches;
  MatchResources& resources = thread_match_resources();
  std::unique_ptr<pcre2_match_data, decltype(&pcre2_match_data_free)> match_data(
      pcre2_match_data_create_from_pattern(code_.get(), nullptr), pcre2_match_data_free);
  if (!match_data) fail("regex: out of memory creating match data");
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t search_from = 0;
  size_t previous_match_end = std::string_view::npos;
  while (search_from <= text.size()) {
    // The text was validated as UTF-8 when it entered the tokenizer, so PCRE2 need not check it again.
    int rc = pcre2_match(code_.get(), subject, text.size(), search_from, PCRE2_NO_UTF_CHECK, match_data.get(), resources.context);
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT) {
      rc = pcre2_match(code_.get(), subject, text.size(), search_from, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, match_data.get(), resources.context);
    }
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) fail("regex: matching failed: {}", pcre2_message(rc));
    const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(match_data.get());
    const size_t begin = ovector[0], end = ovector[1];
    if (begin == end && end == previous_match_end) {
      if (search_from >= text.size()) break;
      search_from += utf8::sequence_length(static_cast<unsigned char>(text[search_from]));
      continue;
    }
    matches.emplace_back(begin, end);
    search_from = end;
    previous_match_end = end;
  }
  return matches;
}

}  // namespace shardlm
