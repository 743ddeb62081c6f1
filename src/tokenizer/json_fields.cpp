// Field accessors for the tokenizer JSON files. nlohmann's own exceptions lack the file and field
// name, so every access goes through these and reports both.
#include "tokenizer/json_fields.h"

#include "core/error.h"

namespace shardlm::json_fields {

const json& required(const json& object, std::string_view key, std::string_view where) {
  if (!object.is_object()) fail("{}: expected an object, found {}", where, object.type_name());
  const auto it = object.find(key);
  if (it == object.end()) fail("{}: missing field \"{}\"", where, key);
  return *it;
}

std::string required_string(const json& object, std::string_view key, std::string_view where) {
  const json& value = required(object, key, where);
  if (!value.is_string()) fail("{}: field \"{}\" must be a string, found {}", where, key, value.type_name());
  return value.get<std::string>();
}

bool bool_or(const json& object, std::string_view key, bool fallback, std::string_view where) {
  if (!object.is_object()) fail("{}: expected an object, found {}", where, object.type_name());
  const auto it = object.find(key);
  if (it == object.end() || it->is_null()) return fallback;
  if (!it->is_boolean()) fail("{}: field \"{}\" must be true or false, found {}", where, key, it->type_name());
  return it->get<bool>();
}

std::optional<std::string> optional_string(const json& object, std::string_view key, std::string_view where) {
  if (!object.is_object()) fail("{}: expected an object, found {}", where, object.type_name());
  const auto it = object.find(key);
  if (it == object.end() || it->is_null()) return std::nullopt;
  if (!it->is_string()) fail("{}: field \"{}\" must be a string, found {}", where, key, it->type_name());
  return it->get<std::string>();
}

std::string type_of(const json& component, std::string_view where) {
  return required_string(component, "type", where);
}

}  // namespace shardlm::json_fields
