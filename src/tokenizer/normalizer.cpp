// Normalizer implementations. HF normalizers also keep an alignment map for offsets; we only produce
// ids, so each one is a plain string-to-string function with HF's edge cases (Prepend skips empty text).
#include "tokenizer/normalizer.h"

#include <cstdlib>
#include <vector>

#include <fmt/format.h>
#include <utf8proc.h>

#include "core/error.h"
#include "tokenizer/json_fields.h"
#include "tokenizer/pattern.h"
#include "tokenizer/regex.h"

namespace shardlm {
namespace {

class UnicodeNormalizer final : public Normalizer {
 public:
  UnicodeNormalizer(utf8proc_option_t options, std::string form) : options_(options), form_(std::move(form)) {}
  std::string normalize(std::string_view text) const override {
    utf8proc_uint8_t* mapped = nullptr;
    const utf8proc_ssize_t length = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(text.data()),
                                                 static_cast<utf8proc_ssize_t>(text.size()), &mapped, options_);
    if (length < 0) fail("{} normalization failed: {}", form_, utf8proc_errmsg(length));
    std::string result(reinterpret_cast<const char*>(mapped), static_cast<size_t>(length));
    std::free(mapped);
    return result;
  }

 private:
  utf8proc_option_t options_;
  std::string form_;
};

class PrependNormalizer final : public Normalizer {
 public:
  explicit PrependNormalizer(std::string prefix) : prefix_(std::move(prefix)) {}
  std::string normalize(std::string_view text) const override {
    if (text.empty()) return {};  // HF prepends only to non-empty text.
    return prefix_ + std::string(text);
  }

 private:
  std::string prefix_;
};

class ReplaceNormalizer final : public Normalizer {
 public:
  ReplaceNormalizer(Regex pattern, std::string content) : pattern_(std::move(pattern)), content_(std::move(content)) {}
  std::string normalize(std::string_view text) const override {
    std::string result;
    size_t copied_up_to = 0;
    for (const auto& [begin, end] : pattern_.find_all(text)) {
      result.append(text.substr(copied_up_to, begin - copied_up_to));
      result += content_;
      copied_up_to = end;
    }
    result.append(text.substr(copied_up_to));
    return result;
  }

 private:
  Regex pattern_;
  std::string content_;
};

class SequenceNormalizer final : public Normalizer {
 public:
  explicit SequenceNormalizer(std::vector<std::unique_ptr<Normalizer>> steps) : steps_(std::move(steps)) {}
  std::string normalize(std::string_view text) const override {
    std::string current(text);
    for (const auto& step : steps_) current = step->normalize(current);
    return current;
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> steps_;
};

}  // namespace

std::unique_ptr<Normalizer> make_normalizer(const nlohmann::json& config, std::string_view source) {
  if (config.is_null()) return nullptr;
  const std::string type = json_fields::type_of(config, fmt::format("{}: normalizer", source));
  const std::string where = fmt::format("{}: normalizer {}", source, type);
  // utf8proc's own NFC/NFD/NFKC/NFKD entry points use exactly these option sets.
  if (type == "NFC") return std::make_unique<UnicodeNormalizer>(utf8proc_option_t(UTF8PROC_STABLE | UTF8PROC_COMPOSE), type);
  if (type == "NFD") return std::make_unique<UnicodeNormalizer>(utf8proc_option_t(UTF8PROC_STABLE | UTF8PROC_DECOMPOSE), type);
  if (type == "NFKC") return std::make_unique<UnicodeNormalizer>(utf8proc_option_t(UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT), type);
  if (type == "NFKD") return std::make_unique<UnicodeNormalizer>(utf8proc_option_t(UTF8PROC_STABLE | UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT), type);
  if (type == "Prepend") return std::make_unique<PrependNormalizer>(json_fields::required_string(config, "prepend", where));
  if (type == "Replace") {
    return std::make_unique<ReplaceNormalizer>(compile_pattern(json_fields::required(config, "pattern", where), where),
                                               json_fields::required_string(config, "content", where));
  }
  if (type == "Sequence") {
    const auto& list = json_fields::required(config, "normalizers", where);
    if (!list.is_array()) fail("{}: \"normalizers\" must be a list", where);
    std::vector<std::unique_ptr<Normalizer>> steps;
    for (const auto& step : list) {
      if (step.is_null()) fail("{}: null entry in \"normalizers\"", where);
      steps.push_back(make_normalizer(step, source));
    }
    return std::make_unique<SequenceNormalizer>(std::move(steps));
  }
  fail("{}: unsupported normalizer type \"{}\"", source, type);
}

}  // namespace shardlm
