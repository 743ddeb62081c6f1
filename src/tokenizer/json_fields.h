// Typed access to tokenizer.json / tokenizer_config.json fields with errors that say where the bad
// field is. `where` is a prefix such as "tokenizer.json: pre_tokenizer Split" and starts every message.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace shardlm::json_fields {

using nlohmann::json;

// The member `key` of `object`; throws if `object` is not an object or lacks the member.
const json& required(const json& object, std::string_view key, std::string_view where);
std::string required_string(const json& object, std::string_view key, std::string_view where);
// Missing or null means `fallback`; any other non-boolean is an error.
bool bool_or(const json& object, std::string_view key, bool fallback, std::string_view where);
// Missing or null means nullopt; any other non-string is an error.
std::optional<std::string> optional_string(const json& object, std::string_view key, std::string_view where);
// The component's "type" string.
std::string type_of(const json& component, std::string_view where);

}  // namespace shardlm::json_fields
