// nlohmann-based implementation of the strict JSON readers. Parsing uses the callback interface only
// to see every object key as it is read, which is how duplicate keys are caught.
#include "io/json_fields.h"

#include <cmath>
#include <limits>
#include <set>

#include "core/error.h"

namespace shardlm {

namespace {

// Long strings in messages are cut: the point is to recognise the value, not to echo a whole file.
constexpr size_t kMaxQuotedChars = 64;

std::string quoted_prefix(const std::string& text) {
  if (text.size() <= kMaxQuotedChars) return fmt::format("\"{}\"", text);
  return fmt::format("\"{}...\"", text.substr(0, kMaxQuotedChars));
}

}  // namespace

nlohmann::json parse_json_object(std::string_view text, const std::string& source_name, std::string_view what) {
  // One key set per open object; keys arrive while their object is the innermost open one.
  std::vector<std::set<std::string>> open_object_keys;
  std::optional<std::string> duplicate_key;
  auto track_keys = [&](int /*depth*/, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
    using Event = nlohmann::json::parse_event_t;
    if (event == Event::object_start) {
      open_object_keys.emplace_back();
    } else if (event == Event::object_end) {
      open_object_keys.pop_back();
    } else if (event == Event::key && !duplicate_key) {
      const auto& key = parsed.get_ref<const std::string&>();
      if (!open_object_keys.back().insert(key).second) duplicate_key = key;
    }
    return true;
  };

  nlohmann::json parsed;
  try {
    parsed = nlohmann::json::parse(text.begin(), text.end(), track_keys);
  } catch (const nlohmann::json::exception& error) {
    // what() starts with "[json.exception.parse_error.101] "; the rest says where and why.
    std::string_view reason = error.what();
    if (const size_t end_of_tag = reason.find("] "); end_of_tag != std::string_view::npos) {
      reason.remove_prefix(end_of_tag + 2);
    }
    fail("{}: {} is not valid JSON: {}", source_name, what, reason);
  }
  if (duplicate_key) fail("{}: {} has the key {} more than once", source_name, what, quoted_prefix(*duplicate_key));
  if (!parsed.is_object()) fail("{}: {} must be a JSON object, got {}", source_name, what, describe_json(parsed));
  return parsed;
}

std::string describe_json(const nlohmann::json& value) {
  switch (value.type()) {
    case nlohmann::json::value_t::string: return "string " + quoted_prefix(value.get_ref<const std::string&>());
    case nlohmann::json::value_t::boolean: return value.get<bool>() ? "true" : "false";
    case nlohmann::json::value_t::number_integer: return fmt::format("integer {}", value.get<int64_t>());
    case nlohmann::json::value_t::number_unsigned: return fmt::format("integer {}", value.get<uint64_t>());
    case nlohmann::json::value_t::number_float: return fmt::format("number {}", value.get<double>());
    default: return value.type_name();  // null, array, object, binary, discarded
  }
}

JsonFields::JsonFields(const nlohmann::json& object, const std::string& source_name, std::string key_prefix)
    : object_(&object), source_name_(&source_name), key_prefix_(std::move(key_prefix)) {}

bool JsonFields::contains(std::string_view key) const { return object_->contains(key); }

bool JsonFields::has_value(std::string_view key) const { return find(key) != nullptr; }

const nlohmann::json* JsonFields::find(std::string_view key) const {
  const auto found = object_->find(key);
  if (found == object_->end() || found->is_null()) return nullptr;
  return &*found;
}

void JsonFields::fail_key(std::string_view key, std::string_view problem) const {
  fail("{}: \"{}{}\" {}", *source_name_, key_prefix_, key, problem);
}

std::optional<int> JsonFields::get_int(std::string_view key) const {
  const nlohmann::json* value = find(key);
  if (value == nullptr) return std::nullopt;
  // Sizes written as 4096.0 are refused like HF's strict config classes do: a float here usually
  // means the wrong key was edited.
  if (!value->is_number_integer()) fail_key(key, "must be an integer, got " + describe_json(*value));
  const bool fits = value->is_number_unsigned()
                        ? value->get<uint64_t>() <= uint64_t(std::numeric_limits<int>::max())
                        : value->get<int64_t>() >= std::numeric_limits<int>::min() &&
                              value->get<int64_t>() <= std::numeric_limits<int>::max();
  if (!fits) fail_key(key, "is out of range: " + describe_json(*value));
  return value->get<int>();
}

std::optional<float> JsonFields::get_float(std::string_view key) const {
  const nlohmann::json* value = find(key);
  if (value == nullptr) return std::nullopt;
  if (!value->is_number()) fail_key(key, "must be a number, got " + describe_json(*value));
  const double number = value->get<double>();
  // Converting a double outside float's range is undefined behaviour, so check before narrowing.
  if (!std::isfinite(number) || std::fabs(number) > double(std::numeric_limits<float>::max())) {
    fail_key(key, "is out of range for a float: " + describe_json(*value));
  }
  return float(number);
}

std::optional<bool> JsonFields::get_bool(std::string_view key) const {
  const nlohmann::json* value = find(key);
  if (value == nullptr) return std::nullopt;
  if (!value->is_boolean()) fail_key(key, "must be true or false, got " + describe_json(*value));
  return value->get<bool>();
}

std::optional<std::string> JsonFields::get_string(std::string_view key) const {
  const nlohmann::json* value = find(key);
  if (value == nullptr) return std::nullopt;
  if (!value->is_string()) fail_key(key, "must be a string, got " + describe_json(*value));
  return value->get<std::string>();
}

std::optional<JsonFields> JsonFields::get_object(std::string_view key) const {
  const nlohmann::json* value = find(key);
  if (value == nullptr) return std::nullopt;
  if (!value->is_object()) fail_key(key, "must be an object, got " + describe_json(*value));
  return JsonFields(*value, *source_name_, fmt::format("{}{}.", key_prefix_, key));
}

// Token ids are checked here rather than with get_int so that a list element gets the same message.
int JsonFields::token_id(std::string_view key, const nlohmann::json& value) const {
  if (!value.is_number_unsigned() || value.get<uint64_t>() > uint64_t(std::numeric_limits<int>::max())) {
    fail_key(key, "must hold token ids (non-negative integers), got " + describe_json(value));
  }
  return value.get<int>();
}

std::optional<int> JsonFields::get_token_id(std::string_view key) const {
  const nlohmann::json* value = find(key);
  if (value == nullptr) return std::nullopt;
  return token_id(key, *value);
}

std::vector<int> JsonFields::get_token_ids(std::string_view key) const {
  const nlohmann::json* value = find(key);
  if (value == nullptr) return {};
  if (!value->is_array()) return {token_id(key, *value)};
  std::vector<int> ids;
  for (const nlohmann::json& item : *value) ids.push_back(token_id(key, item));
  return ids;
}

}  // namespace shardlm
