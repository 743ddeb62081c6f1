// What `object.name`, `object[key]` and `object[start:stop:step]` mean for each kind of value:
// object keys, Python's str and dict methods (bound to the value, ready to call), list and string
// indexing with negative indices, and Python's slicing.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "chat/jinja/value.h"

namespace shardlm::jinja {

// Undefined when the value has no such member (undefined and none have none); subscripting
// undefined or none is an Error.
Value member(const Value& object, const std::string& name);
Value subscript(const Value& object, const Value& key);
Value slice(const Value& object, std::optional<int64_t> start, std::optional<int64_t> stop, std::optional<int64_t> step);

}  // namespace shardlm::jinja
