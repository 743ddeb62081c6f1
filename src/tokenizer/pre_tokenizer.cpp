// Pre-tokenizer implementations, following the Rust tokenizers crate: a Split turns regex matches into
// pieces according to its SplitDelimiterBehavior, ByteLevel optionally splits with the GPT-2 regex and
// then spells bytes with the GPT-2 table, Metaspace replaces spaces by "▁" and splits before each one.
#include "tokenizer/pre_tokenizer.h"

#include <algorithm>
#include <utility>

#include <fmt/format.h>

#include "core/error.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/json_fields.h"
#include "tokenizer/pattern.h"
#include "tokenizer/regex.h"

namespace shardlm {
namespace {

enum class SplitBehavior { REMOVED, ISOLATED, MERGED_WITH_PREVIOUS, MERGED_WITH_NEXT, CONTIGUOUS };

SplitBehavior parse_split_behavior(const std::string& name, std::string_view where) {
  if (name == "Removed") return SplitBehavior::REMOVED;
  if (name == "Isolated") return SplitBehavior::ISOLATED;
  if (name == "MergedWithPrevious") return SplitBehavior::MERGED_WITH_PREVIOUS;
  if (name == "MergedWithNext") return SplitBehavior::MERGED_WITH_NEXT;
  if (name == "Contiguous") return SplitBehavior::CONTIGUOUS;
  fail("{}: unknown split behavior \"{}\"", where, name);
}

struct Segment {
  size_t begin, end;
  bool is_match;
};

// The text cut into alternating match / non-match segments that cover it completely.
std::vector<Segment> segment_by_matches(std::string_view text, const Regex& pattern, bool invert) {
  std::vector<Segment> segments;
  size_t previous_end = 0;
  for (const auto& [begin, end] : pattern.find_all(text)) {
    if (begin != previous_end) segments.push_back({previous_end, begin, invert});
    segments.push_back({begin, end, !invert});
    previous_end = end;
  }
  if (previous_end != text.size()) segments.push_back({previous_end, text.size(), invert});
  return segments;
}

// Applies a delimiter behavior to the segments; returns the [begin, end) ranges that become pieces.
std::vector<std::pair<size_t, size_t>> apply_behavior(const std::vector<Segment>& segments, SplitBehavior behavior) {
  std::vector<std::pair<size_t, size_t>> pieces;
  bool previous_match = false;
  switch (behavior) {
    case SplitBehavior::REMOVED:
      for (const Segment& s : segments) {
        if (!s.is_match) pieces.emplace_back(s.begin, s.end);
      }
      break;
    case SplitBehavior::ISOLATED:
      for (const Segment& s : segments) pieces.emplace_back(s.begin, s.end);
      break;
    case SplitBehavior::MERGED_WITH_PREVIOUS:
      for (const Segment& s : segments) {
        if (s.is_match && !previous_match && !pieces.empty()) {
          pieces.back().second = s.end;
        } else {
          pieces.emplace_back(s.begin, s.end);
        }
        previous_match = s.is_match;
      }
      break;
    case SplitBehavior::MERGED_WITH_NEXT:
      for (auto it = segments.rbegin(); it != segments.rend(); ++it) {
        if (it->is_match && !previous_match && !pieces.empty()) {
          pieces.back().first = it->begin;
        } else {
          pieces.emplace_back(it->begin, it->end);
        }
        previous_match = it->is_match;
      }
      std::reverse(pieces.begin(), pieces.end());
      break;
    case SplitBehavior::CONTIGUOUS:
      for (size_t i = 0; i < segments.size(); ++i) {
        const Segment& s = segments[i];
        if (i > 0 && s.is_match == previous_match) {
          pieces.back().second = s.end;
        } else {
          pieces.emplace_back(s.begin, s.end);
        }
        previous_match = s.is_match;
      }
      break;
  }
  return pieces;
}

// Replaces every piece by the non-empty sub-ranges that `split_one` returns for it.
template <typename SplitOne>
void split_each(std::vector<PreToken>& pieces, SplitOne split_one) {
  std::vector<PreToken> result;
  result.reserve(pieces.size());
  for (const PreToken& piece : pieces) {
    for (const auto& [begin, end] : split_one(piece.text)) {
      if (begin == end) continue;
      result.push_back({piece.text.substr(begin, end - begin), piece.at_text_start && begin == 0});
    }
  }
  pieces = std::move(result);
}

class SplitPreTokenizer final : public PreTokenizer {
 public:
  SplitPreTokenizer(Regex pattern, SplitBehavior behavior, bool invert)
      : pattern_(std::move(pattern)), behavior_(behavior), invert_(invert) {}
  void pre_tokenize(std::vector<PreToken>& pieces) const override {
    split_each(pieces, [&](const std::string& text) { return apply_behavior(segment_by_matches(text, pattern_, invert_), behavior_); });
  }

 private:
  Regex pattern_;
  SplitBehavior behavior_;
  bool invert_;
};

// GPT-2's pre-tokenization regex, used by ByteLevel when use_regex is true.
const Regex& gpt2_pattern() {
  static const Regex pattern = Regex::compile(
      R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)", "ByteLevel GPT-2 pattern");
  return pattern;
}

class ByteLevelPreTokenizer final : public PreTokenizer {
 public:
  ByteLevelPreTokenizer(bool add_prefix_space, bool use_regex) : add_prefix_space_(add_prefix_space), use_regex_(use_regex) {}
  void pre_tokenize(std::vector<PreToken>& pieces) const override {
    if (add_prefix_space_) {
      for (PreToken& piece : pieces) {
        if (!piece.text.starts_with(' ')) piece.text.insert(0, 1, ' ');
      }
    }
    if (use_regex_) {
      split_each(pieces, [](const std::string& text) { return apply_behavior(segment_by_matches(text, gpt2_pattern(), false), SplitBehavior::ISOLATED); });
    }
    for (PreToken& piece : pieces) {
      std::string spelled;
      spelled.reserve(piece.text.size() * 2);
      byte_level::append_encoded(piece.text, spelled);
      piece.text = std::move(spelled);
    }
  }

 private:
  bool add_prefix_space_;
  bool use_regex_;
};

enum class PrependScheme { ALWAYS, FIRST, NEVER };

class MetaspacePreTokenizer final : public PreTokenizer {
 public:
  MetaspacePreTokenizer(std::string replacement, PrependScheme prepend_scheme, bool split, std::string_view where)
      : replacement_(std::move(replacement)),
        prepend_scheme_(prepend_scheme),
        split_(split),
        replacement_pattern_(Regex::literal(replacement_, where)) {}
  void pre_tokenize(std::vector<PreToken>& pieces) const override {
    for (PreToken& piece : pieces) {
      std::string replaced;
      replaced.reserve(piece.text.size() + replacement_.size());
      for (char c : piece.text) {
        if (c == ' ') {
          replaced += replacement_;
        } else {
          replaced += c;
        }
      }
      const bool wants_prefix = prepend_scheme_ == PrependScheme::ALWAYS || (prepend_scheme_ == PrependScheme::FIRST && piece.at_text_start);
      if (wants_prefix && !replaced.starts_with(replacement_)) replaced.insert(0, replacement_);
      piece.text = std::move(replaced);
    }
    if (split_) {
      split_each(pieces, [&](const std::string& text) {
        return apply_behavior(segment_by_matches(text, replacement_pattern_, false), SplitBehavior::MERGED_WITH_NEXT);
      });
    } else {
      std::erase_if(pieces, [](const PreToken& piece) { return piece.text.empty(); });
    }
  }

 private:
  std::string replacement_;
  PrependScheme prepend_scheme_;
  bool split_;
  Regex replacement_pattern_;
};

class SequencePreTokenizer final : public PreTokenizer {
 public:
  explicit SequencePreTokenizer(std::vector<std::unique_ptr<PreTokenizer>> steps) : steps_(std::move(steps)) {}
  void pre_tokenize(std::vector<PreToken>& pieces) const override {
    for (const auto& step : steps_) step->pre_tokenize(pieces);
  }

 private:
  std::vector<std::unique_ptr<PreTokenizer>> steps_;
};

std::unique_ptr<PreTokenizer> make_metaspace(const nlohmann::json& config, std::string_view where) {
  const std::string replacement = json_fields::required_string(config, "replacement", where);
  if (replacement.empty()) fail("{}: empty replacement", where);
  PrependScheme scheme = PrependScheme::ALWAYS;
  if (const auto name = json_fields::optional_string(config, "prepend_scheme", where)) {
    if (*name == "always") {
      scheme = PrependScheme::ALWAYS;
    } else if (*name == "first") {
      scheme = PrependScheme::FIRST;
    } else if (*name == "never") {
      scheme = PrependScheme::NEVER;
    } else {
      fail("{}: unknown prepend_scheme \"{}\"", where, *name);
    }
  }
  // Files written before prepend_scheme existed say add_prefix_space instead; false there means never.
  if (!json_fields::bool_or(config, "add_prefix_space", true, where)) scheme = PrependScheme::NEVER;
  return std::make_unique<MetaspacePreTokenizer>(replacement, scheme, json_fields::bool_or(config, "split", true, where), where);
}

}  // namespace

std::unique_ptr<PreTokenizer> make_pre_tokenizer(const nlohmann::json& config, std::string_view source) {
  if (config.is_null()) return nullptr;
  const std::string type = json_fields::type_of(config, fmt::format("{}: pre_tokenizer", source));
  const std::string where = fmt::format("{}: pre_tokenizer {}", source, type);
  if (type == "ByteLevel") {
    return std::make_unique<ByteLevelPreTokenizer>(json_fields::bool_or(config, "add_prefix_space", true, where),
                                                   json_fields::bool_or(config, "use_regex", true, where));
  }
  if (type == "Split") {
    return std::make_unique<SplitPreTokenizer>(compile_pattern(json_fields::required(config, "pattern", where), where),
                                               parse_split_behavior(json_fields::required_string(config, "behavior", where), where),
                                               json_fields::bool_or(config, "invert", false, where));
  }
  if (type == "Metaspace") return make_metaspace(config, where);
  if (type == "Sequence") {
    const auto& list = json_fields::required(config, "pretokenizers", where);
    if (!list.is_array()) fail("{}: \"pretokenizers\" must be a list", where);
    std::vector<std::unique_ptr<PreTokenizer>> steps;
    for (const auto& step : list) {
      if (step.is_null()) fail("{}: null entry in \"pretokenizers\"", where);
      steps.push_back(make_pre_tokenizer(step, source));
    }
    return std::make_unique<SequencePreTokenizer>(std::move(steps));
  }
  fail("{}: unsupported pre_tokenizer type \"{}\"", source, type);
}

}  // namespace shardlm
