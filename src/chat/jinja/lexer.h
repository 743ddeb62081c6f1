// Splits a template into tokens: text between tags, and the words, literals and operators inside
// `{{ }}` and `{% %}`. Whitespace control follows Transformers' chat-template environment, as
// @huggingface/jinja applies it: trim_blocks (the newline after a block or comment tag goes),
// lstrip_blocks (spaces and tabs before a block or comment tag at the start of a line go), a
// trailing newline at the end of the template goes, and `-` beside a delimiter strips all (JS)
// whitespace on that side. Comments are dropped here.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace shardlm::jinja {

enum class TokenKind {
  Text,
  OpenStatement,    // {%
  CloseStatement,   // %}
  OpenExpression,   // {{
  CloseExpression,  // }}
  Identifier,
  String,   // text is the decoded value
  Integer,
  Float,
  Operator,  // + - * / // % ** ~ == != < > <= >= = | . , : ( ) [ ] { }
  End,
};

struct Token {
  TokenKind kind;
  std::string text;
  int line = 1;
  int column = 1;
};

// Throws Error naming line:column for an unterminated tag, comment or string, or a stray character.
std::vector<Token> tokenize(std::string_view source);

}  // namespace shardlm::jinja
