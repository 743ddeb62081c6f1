#include "chat/jinja/operators.h"

#include <cmath>

#include "chat/jinja/limits.h"
#include "core/error.h"

namespace shardlm::jinja {
namespace {

bool contains(const Value& container, const Value& item) {
  if (container.is_string()) {
    if (!item.is_string()) fail("'in <string>' needs a string on the left, got {}", item.type_name());
    return container.as_string().find(item.as_string()) != std::string::npos;
  }
  if (container.is_array()) {
    for (const Value& each : container.as_array())
      if (identical(each, item)) return true;
    return false;
  }
  if (container.is_object()) return item.is_string() && container.as_object().find(item.as_string()) != nullptr;
  if (container.is_undefined() || container.is_none()) return false;
  fail("'in' needs a string, list or object on the right, got {}", container.type_name());
}

bool numeric(const Value& value) { return value.is_number() || value.is_bool(); }
int64_t integral(const Value& value) { return value.is_bool() ? int64_t(value.as_bool()) : value.as_integer(); }
double real(const Value& value) { return value.is_bool() ? double(value.as_bool()) : value.as_number(); }

Value arithmetic(const std::string& op, const Value& left, const Value& right) {
  if (!numeric(left) || !numeric(right))
    fail("unsupported operand types for {}: {} and {}", op, left.type_name(), right.type_name());
  const bool integers = !left.is_float() && !right.is_float();
  if (op == "/") {
    if (real(right) == 0) fail("division by zero");
    return Value(real(left) / real(right));
  }
  if (integers) {
    const int64_t a = integral(left), b = integral(right);
    int64_t result = 0;
    bool overflow = false;
    if (op == "+") overflow = __builtin_add_overflow(a, b, &result);
    else if (op == "-") overflow = __builtin_sub_overflow(a, b, &result);
    else if (op == "*") overflow = __builtin_mul_overflow(a, b, &result);
    else if (op == "**") {
      if (b < 0) return Value(std::pow(double(a), double(b)));
      if (a == 0 || a == 1) result = b == 0 ? 1 : a;
      else if (a == -1) result = b % 2 == 0 ? 1 : -1;
      else {  // |a| >= 2 overflows within 63 factors
        result = 1;
        for (int64_t i = 0; i < b && !overflow; ++i) overflow = __builtin_mul_overflow(result, a, &result);
      }
    }
    if (overflow) fail("{} {} {} overflows a 64-bit integer", a, op, b);
    if (op == "+" || op == "-" || op == "*" || op == "**") return Value(result);
    if (b == 0) fail("integer division or modulo by zero");
    if (a == INT64_MIN && b == -1) fail("{} {} {} overflows a 64-bit integer", a, op, b);
    if (op == "%") return Value(a % b);  // JS's remainder: the sign of the dividend
    return Value(a / b - ((a % b != 0) && ((a < 0) != (b < 0))));  // "//" floors, as Python
  }
  const double a = real(left), b = real(right);
  if (op == "+") return Value(a + b);
  if (op == "-") return Value(a - b);
  if (op == "*") return Value(a * b);
  if (op == "**") return Value(std::pow(a, b));
  if (b == 0) fail("float division or modulo by zero");
  if (op == "//") return Value(std::floor(a / b));
  return Value(std::fmod(a, b));
}

bool less(const Value& left, const Value& right) {
  if (numeric(left) && numeric(right)) return real(left) < real(right);
  if (left.is_string() && right.is_string()) return left.as_string() < right.as_string();
  fail("cannot order {} and {}", left.type_name(), right.type_name());
}

}  // namespace

Value binary(const std::string& op, const Value& left, const Value& right) {
  if (op == "==") return Value(equal(left, right));
  if (op == "!=") return Value(!equal(left, right));
  if (op == "<") return Value(less(left, right));
  if (op == ">") return Value(less(right, left));
  if (op == "<=") return Value(!less(right, left));
  if (op == ">=") return Value(!less(left, right));
  if (op == "in") return Value(contains(right, left));
  if (op == "not in") return Value(!contains(right, left));
  if (op == "~" || (op == "+" && (left.is_string() || right.is_string()))) {
    for (const Value* side : {&left, &right})
      if (side->is_none() || (op == "+" && side->is_undefined()))
        fail("cannot apply {} to {}", op, side->type_name());
    std::string joined = left.to_js_string() + right.to_js_string();
    check_string_size(joined.size(), op.c_str());
    return Value(std::move(joined));
  }
  if (op == "+" && left.is_array() && right.is_array()) {
    check_array_size(left.as_array().size() + right.as_array().size(), "+");
    Array joined = left.as_array();
    joined.insert(joined.end(), right.as_array().begin(), right.as_array().end());
    return Value(std::move(joined));
  }
  if (op == "*" && (left.is_string() || right.is_string())) {
    const Value& text = left.is_string() ? left : right;
    const Value& count = left.is_string() ? right : left;
    if (!count.is_integer()) fail("a string can only be repeated by an integer, got {}", count.type_name());
    const int64_t times = text.as_string().empty() ? 0 : std::max<int64_t>(count.as_integer(), 0);
    if (times > 0) check_string_size(text.as_string().size() * size_t(std::min<int64_t>(times, int64_t(kMaxStringBytes) + 1)), "*");
    std::string repeated;
    for (int64_t i = 0; i < times; ++i) repeated += text.as_string();
    return Value(std::move(repeated));
  }
  return arithmetic(op, left, right);
}

}  // namespace shardlm::jinja
