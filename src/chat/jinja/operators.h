// Binary operators on values, as @huggingface/jinja computes them: integer arithmetic stays integral
// (`/` always gives a float, `//` floors as Python does, `%` keeps the dividend's sign as JS does),
// + joins lists, and joins text when either side is a string, ~ joins anything as JS writes it,
// comparisons (strings too, as in Python, where the package refuses them), and `in` for substrings,
// list items (the same value, or the same list or object) and object keys. `and` / `or`
// short-circuit in the interpreter.
#pragma once

#include <string>

#include "chat/jinja/value.h"

namespace shardlm::jinja {

Value binary(const std::string& op, const Value& left, const Value& right);

}  // namespace shardlm::jinja
