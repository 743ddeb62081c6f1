// A compiled tokenizer.json regex. HF compiles these patterns with Oniguruma; we use PCRE2 (UTF + UCP,
// JIT), which accepts the same syntax for everything tokenizers use (\p{L}, (?i:...), lookahead,
// possessive and counted repeats). The few escapes whose meaning differs are rewritten before compiling.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

struct pcre2_real_code_8;  // pcre2.h stays out of our headers

namespace shardlm {

class Regex {
 public:
  // Throws Error naming `where` (e.g. "tokenizer.json: pre_tokenizer Split") if the pattern does not compile.
  static Regex compile(std::string_view pattern, std::string_view where);
  // A pattern matching `literal` exactly (HF's {"String": ...} patterns).
  static Regex literal(std::string_view literal, std::string_view where);

  // Byte ranges [begin, end) of the successive non-overlapping matches in valid UTF-8 `text`, with
  // Oniguruma's find_iter rule for empty matches (never one right after the previous match).
  std::vector<std::pair<size_t, size_t>> find_all(std::string_view text) const;

 private:
  // pcre2_code is immutable after compilation and safe to share across threads and copies.
  std::shared_ptr<pcre2_real_code_8> code_;
};

// Rewrites the Oniguruma escapes that PCRE2 reads differently: \s and \S (PCRE2 adds U+180E to \s in
// UCP mode, Oniguruma uses the White_Space property) and \h / \H (hex digit in Oniguruma, horizontal
// space in PCRE2). Exposed for tests.
std::string translate_oniguruma_pattern(std::string_view pattern);

}  // namespace shardlm
