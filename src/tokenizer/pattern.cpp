// Compiles a tokenizer.json pattern object. A String pattern matches its text literally, exactly as HF
// escapes it into a regex.
#include "tokenizer/pattern.h"

#include "core/error.h"

namespace shardlm {

Regex compile_pattern(const nlohmann::json& pattern, std::string_view where) {
  if (pattern.is_object() && pattern.size() == 1) {
    const auto entry = pattern.begin();
    const std::string& kind = entry.key();
    const auto& value = entry.value();
    if (value.is_string()) {
      const auto text = value.get<std::string>();
      if (kind == "Regex") return Regex::compile(text, where);
      if (kind == "String") {
        if (text.empty()) fail("{}: empty String pattern", where);
        return Regex::literal(text, where);
      }
    }
  }
  fail("{}: pattern must be {{\"String\": ...}} or {{\"Regex\": ...}}, found {}", where, pattern.dump());
}

}  // namespace shardlm
