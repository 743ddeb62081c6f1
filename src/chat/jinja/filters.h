// Jinja's filters, `value | name(arguments)`: the set chat templates use (text, lists, JSON,
// defaults, selection and mapping over lists of messages and tools).
#pragma once

#include <string_view>

#include "chat/jinja/value.h"

namespace shardlm::jinja {

// Throws Error for an unknown filter or an operand it cannot take.
Value apply_filter(std::string_view name, const Value& operand, const CallArguments& arguments);

}  // namespace shardlm::jinja
