#include "chat/jinja/predicates.h"

#include "chat/jinja/arguments.h"
#include "chat/jinja/operators.h"
#include "chat/jinja/text.h"
#include "core/error.h"

namespace shardlm::jinja {

bool apply_test(std::string_view name, const Value& operand, const CallArguments& arguments) {
  ArgumentReader reader(name, arguments);
  auto done = [&](bool result) {
    reader.finish();
    return result;
  };
  auto compare = [&](const char* op) { return done(binary(op, operand, reader.take("other")).truthy()); };
  if (name == "defined") return done(!operand.is_undefined());
  if (name == "undefined") return done(operand.is_undefined());
  if (name == "none") return done(operand.is_none());
  if (name == "boolean") return done(operand.is_bool());
  if (name == "true") return done(operand.is_bool() && operand.as_bool());
  if (name == "false") return done(operand.is_bool() && !operand.as_bool());
  if (name == "number") return done(operand.is_number());
  if (name == "integer") return done(operand.is_integer());
  if (name == "float") return done(operand.is_float());
  if (name == "string") return done(operand.is_string());
  if (name == "mapping") return done(operand.is_object());
  // As @huggingface/jinja: an object is a sequence but not iterable.
  if (name == "sequence") return done(operand.is_array() || operand.is_string() || operand.is_object());
  if (name == "iterable") return done(operand.is_array() || operand.is_string());
  if (name == "callable") return done(operand.is_callable());
  if (name == "lower") return done(operand.is_string() && text::lower(operand.as_string()) == operand.as_string());
  if (name == "upper") return done(operand.is_string() && text::upper(operand.as_string()) == operand.as_string());
  if (name == "odd" || name == "even") {
    const int64_t number = expect_integer(operand, std::string("the operand of 'is ") + std::string(name) + "'");
    return done((number % 2 != 0) == (name == "odd"));
  }
  if (name == "divisibleby") {
    const int64_t number = expect_integer(operand, "the operand of 'is divisibleby'");
    const int64_t divisor = expect_integer(reader.take("num"), "divisibleby()'s argument");
    if (divisor == 0) fail("divisibleby(0)");
    return done(divisor == -1 || number % divisor == 0);
  }
  if (name == "equalto" || name == "eq" || name == "==" || name == "sameas") return compare("==");
  if (name == "ne" || name == "!=") return compare("!=");
  if (name == "lt" || name == "lessthan" || name == "<") return compare("<");
  if (name == "le" || name == "<=") return compare("<=");
  if (name == "gt" || name == "greaterthan" || name == ">") return compare(">");
  if (name == "ge" || name == ">=") return compare(">=");
  if (name == "in") return done(binary("in", operand, reader.take("seq")).truthy());
  fail("unknown test '{}'", name);
}

}  // namespace shardlm::jinja
