// Strict reading of the JSON files that come with a checkpoint (safetensors headers, config.json,
// generation_config.json, the shard index). Every failure is a shardlm::Error that names the file
// and the key, so a user can fix the file; nlohmann's own exceptions never leave this layer.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace shardlm {

// Parses `text` and requires a top-level object. `what` names the text in messages ("header",
// "config"). Duplicate keys in any object are an error: nlohmann would silently keep the last one,
// and in a safetensors header that would hide a tensor.
nlohmann::json parse_json_object(std::string_view text, const std::string& source_name, std::string_view what);

// Short description of a JSON value for error messages: its type, and its value if it is a scalar.
std::string describe_json(const nlohmann::json& value);

// Typed, optional fields of one JSON object. A key that is absent or null reads as nullopt, as it
// does in Hugging Face's config classes; a key of the wrong type is an error.
class JsonFields {
 public:
  // `key_prefix` qualifies keys in messages, e.g. "rope_scaling." for a nested object.
  JsonFields(const nlohmann::json& object, const std::string& source_name, std::string key_prefix = "");

  bool contains(std::string_view key) const;  // present, even if null
  bool has_value(std::string_view key) const;  // present and not null

  std::optional<int> get_int(std::string_view key) const;
  std::optional<float> get_float(std::string_view key) const;  // an integer or a finite float in range
  std::optional<bool> get_bool(std::string_view key) const;
  std::optional<std::string> get_string(std::string_view key) const;
  std::optional<JsonFields> get_object(std::string_view key) const;
  // A token id is a non-negative integer that fits in int.
  std::optional<int> get_token_id(std::string_view key) const;
  // A token id or a list of them (e.g. eos_token_id); absent or null gives an empty list.
  std::vector<int> get_token_ids(std::string_view key) const;

  // Fails with "<source>: \"<prefix><key>\" <problem>".
  [[noreturn]] void fail_key(std::string_view key, std::string_view problem) const;

  const nlohmann::json& object() const { return *object_; }
  const std::string& source_name() const { return *source_name_; }

 private:
  const nlohmann::json* find(std::string_view key) const;  // nullptr if absent or null
  int token_id(std::string_view key, const nlohmann::json& value) const;

  const nlohmann::json* object_;
  const std::string* source_name_;
  std::string key_prefix_;
};

}  // namespace shardlm
