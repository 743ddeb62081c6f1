// Builds the statement tree from tokens, with @huggingface/jinja's operator precedence (loosest
// first): `x if c else y`, or, and, not, comparisons and `in`, + - ~, * / // %, unary minus, `is`
// tests, `|` filters, then calls, attributes and subscripts.
#pragma once

#include <vector>

#include "chat/jinja/ast.h"
#include "chat/jinja/lexer.h"

namespace shardlm::jinja {

// Throws Error naming line:column and what was expected.
Body parse(const std::vector<Token>& tokens);

}  // namespace shardlm::jinja
