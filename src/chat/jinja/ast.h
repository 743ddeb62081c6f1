// The parsed template: statements holding expressions, as Jinja's grammar names them. Nodes keep
// the line and column they start at, for errors raised while rendering.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "chat/jinja/value.h"

namespace shardlm::jinja {

struct Expression;
using ExpressionPtr = std::unique_ptr<Expression>;

struct Arguments {
  std::vector<ExpressionPtr> positional;
  std::vector<std::pair<std::string, ExpressionPtr>> keyword;
};

struct Literal {
  Value value;
};
struct ListLiteral {  // [a, b] and (a, b)
  std::vector<ExpressionPtr> items;
};
struct DictLiteral {
  std::vector<std::pair<ExpressionPtr, ExpressionPtr>> entries;
};
struct Name {
  std::string name;
};
struct Attribute {  // object.name
  ExpressionPtr object;
  std::string name;
};
struct Subscript {  // object[key]
  ExpressionPtr object;
  ExpressionPtr key;
};
struct Slice {  // object[start:stop:step], each part optional
  ExpressionPtr object, start, stop, step;
};
struct Call {
  ExpressionPtr callee;
  Arguments arguments;
};
struct FilterApplication {  // operand | name(arguments)
  ExpressionPtr operand;
  std::string name;
  Arguments arguments;
};
struct TestApplication {  // operand is [not] name(arguments)
  ExpressionPtr operand;
  std::string name;
  bool negated = false;
  Arguments arguments;
};
struct Unary {  // not, -, +
  std::string op;
  ExpressionPtr operand;
};
struct Binary {  // arithmetic, ~, comparisons, in, not in, and, or
  std::string op;
  ExpressionPtr left, right;
};
struct Conditional {  // then if condition else otherwise (otherwise may be absent)
  ExpressionPtr then, condition, otherwise;
};

struct Expression {
  std::variant<Literal, ListLiteral, DictLiteral, Name, Attribute, Subscript, Slice, Call, FilterApplication,
               TestApplication, Unary, Binary, Conditional>
      node;
  int line = 0, column = 0;
};

struct Statement;
using Body = std::vector<std::unique_ptr<Statement>>;

struct TextOutput {
  std::string text;
};
struct ExpressionOutput {
  ExpressionPtr value;
};
struct If {
  ExpressionPtr condition;
  Body then, otherwise;  // an elif is an If alone in `otherwise`
};
struct For {
  std::vector<std::string> targets;  // one name, or several to unpack each item into
  ExpressionPtr iterable;
  ExpressionPtr condition;  // `for x in xs if condition`, optional
  Body body, otherwise;     // `otherwise` runs when nothing was iterated
};
struct Set {
  ExpressionPtr target;  // a Name, an Attribute (namespace member) or a ListLiteral of names
  ExpressionPtr value;   // absent for a block set, whose body renders to the value
  Body body;
};
struct Macro {
  std::string name;
  std::vector<std::pair<std::string, ExpressionPtr>> parameters;  // default values optional
  Body body;
};
struct CallBlock {  // {% call macro(args) %}body{% endcall %}: the body is the macro's caller()
  ExpressionPtr call;
  Body body;
};
struct FilterBlock {  // {% filter name(args) %}body{% endfilter %}
  std::string name;
  Arguments arguments;
  Body body;
};
struct Break {};
struct Continue {};

struct Statement {
  std::variant<TextOutput, ExpressionOutput, If, For, Set, Macro, CallBlock, FilterBlock, Break, Continue> node;
  int line = 0, column = 0;
};

}  // namespace shardlm::jinja
