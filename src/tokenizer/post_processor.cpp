// Reduces the post-processor to the ids it wraps around sequence A. Any template that does not have
// exactly one $A with special tokens around it is rejected rather than approximated.
#include "tokenizer/post_processor.h"

#include <fmt/format.h>

#include "core/error.h"
#include "tokenizer/json_fields.h"

namespace shardlm {
namespace {

SpecialTokenTemplate parse_template_processing(const nlohmann::json& config, std::string_view where) {
  const auto& single = json_fields::required(config, "single", where);
  if (!single.is_array()) fail("{}: \"single\" must be a list", where);
  const auto& special_tokens = json_fields::required(config, "special_tokens", where);
  SpecialTokenTemplate result;
  bool seen_sequence = false;
  for (const auto& piece : single) {
    if (piece.is_object() && piece.contains("Sequence")) {
      const std::string id = json_fields::required_string(piece["Sequence"], "id", where);
      if (id != "A" || seen_sequence) fail("{}: single template must contain $A exactly once (found ${})", where, id);
      seen_sequence = true;
    } else if (piece.is_object() && piece.contains("SpecialToken")) {
      const std::string name = json_fields::required_string(piece["SpecialToken"], "id", where);
      const auto& entry = json_fields::required(special_tokens, name, where);
      const auto& ids = json_fields::required(entry, "ids", where);
      if (!ids.is_array()) fail("{}: special token \"{}\" ids must be a list", where, name);
      auto& target = seen_sequence ? result.after : result.before;
      for (const auto& id : ids) {
        if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() > INT32_MAX) {
          fail("{}: special token \"{}\" has invalid id {}", where, name, id.dump());
        }
        target.push_back(id.get<int32_t>());
      }
    } else {
      fail("{}: unknown template piece {}", where, piece.dump());
    }
  }
  if (!seen_sequence) fail("{}: single template has no $A", where);
  return result;
}

}  // namespace

SpecialTokenTemplate make_post_processor(const nlohmann::json& config, std::string_view source) {
  if (config.is_null()) return {};
  const std::string type = json_fields::type_of(config, fmt::format("{}: post_processor", source));
  const std::string where = fmt::format("{}: post_processor {}", source, type);
  if (type == "TemplateProcessing") return parse_template_processing(config, where);
  if (type == "ByteLevel") return {};
  if (type == "Sequence") {
    const auto& list = json_fields::required(config, "processors", where);
    if (!list.is_array()) fail("{}: \"processors\" must be a list", where);
    // Each step wraps the output of the previous one.
    SpecialTokenTemplate combined;
    for (const auto& step : list) {
      const SpecialTokenTemplate inner = make_post_processor(step, source);
      combined.before.insert(combined.before.begin(), inner.before.begin(), inner.before.end());
      combined.after.insert(combined.after.end(), inner.after.begin(), inner.after.end());
    }
    return combined;
  }
  fail("{}: unsupported post_processor type \"{}\"", source, type);
}

}  // namespace shardlm
