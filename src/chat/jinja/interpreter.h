// Renders a parsed template: statements write to the output, expressions evaluate to Values in
// nested scopes (a loop iteration and a macro call each open one; `set` writes the innermost, as in
// Jinja, which is why templates carry state out of loops in a namespace()).
#pragma once

#include <string>

#include "chat/jinja/ast.h"
#include "chat/jinja/value.h"

namespace shardlm::jinja {

// Throws Error naming the line and column of the statement or expression that failed.
std::string render(const Body& body, const Object& variables);

}  // namespace shardlm::jinja
