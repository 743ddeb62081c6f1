// Jinja's tests, the predicates after `is`: `x is defined`, `n is divisibleby(3)`, `x is not none`.
// select/reject and selectattr/rejectattr apply them too.
#pragma once

#include <string_view>

#include "chat/jinja/value.h"

namespace shardlm::jinja {

// Throws Error for an unknown test name.
bool apply_test(std::string_view name, const Value& operand, const CallArguments& arguments);

}  // namespace shardlm::jinja
