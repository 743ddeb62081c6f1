#include "chat/jinja/globals.h"

#include <cmath>
#include <ctime>

#include "chat/jinja/arguments.h"
#include "chat/jinja/limits.h"
#include "core/error.h"

namespace shardlm::jinja {
namespace {

Value range(const CallArguments& arguments) {
  if (!arguments.keyword.empty()) fail("range() takes no keyword arguments");
  const auto& given = arguments.positional;
  if (given.empty() || given.size() > 3) fail("range() takes 1 to 3 arguments, got {}", given.size());
  int64_t start = 0, stop = 0, step = 1;
  if (given.size() == 1) {
    stop = expect_integer(given[0], "range()'s stop");
  } else {
    start = expect_integer(given[0], "range()'s start");
    stop = expect_integer(given[1], "range()'s stop");
    if (given.size() == 3) step = expect_integer(given[2], "range()'s step");
  }
  if (step == 0) fail("range() step must not be zero");
  // In long double (64-bit mantissa): exact for any int64 bounds, and no negation overflows.
  const long double span = step > 0 ? (long double)stop - start : (long double)start - stop;
  const long double stride = step > 0 ? (long double)step : -(long double)step;
  const long double count = span <= 0 ? 0 : std::floor((span - 1) / stride) + 1;
  check_array_size(size_t(std::min<long double>(count, (long double)kMaxArrayItems + 1)), "range()");
  // Counted, not stepped to the end: the last step may overflow past INT64_MAX.
  Array numbers;
  for (int64_t k = 0; k < int64_t(count); ++k) numbers.emplace_back(int64_t((long double)start + (long double)k * step));
  return Value(std::move(numbers));
}

Value object_of_keywords(std::string_view function, const CallArguments& arguments) {
  if (!arguments.positional.empty()) fail("{}() takes keyword arguments only", function);
  Object object;
  for (const auto& [name, value] : arguments.keyword) object.set(name, value);
  return Value(std::move(object));
}

Value raise_exception(const CallArguments& arguments) {
  ArgumentReader reader("raise_exception", arguments);
  const std::string message = reader.take("message").to_output();
  fail("the template raised an exception: {}", message);
}

Value strftime_now(const CallArguments& arguments) {
  ArgumentReader reader("strftime_now", arguments);
  const std::string format = expect_string(reader.take("format"), "strftime_now()'s format");
  reader.finish();
  const std::time_t now = std::time(nullptr);
  std::tm local{};
  localtime_r(&now, &local);
  char buffer[256];
  const size_t written = std::strftime(buffer, sizeof(buffer), format.c_str(), &local);
  if (written == 0 && !format.empty()) fail("strftime_now(): the format '{}' gives nothing or too much", format);
  return Value(std::string(buffer, written));
}

Object make_globals() {
  Object globals;
  globals.set("range", Value(Callable(range)));
  globals.set("namespace", Value(Callable([](const CallArguments& arguments) { return object_of_keywords("namespace", arguments); })));
  globals.set("dict", Value(Callable([](const CallArguments& arguments) { return object_of_keywords("dict", arguments); })));
  globals.set("raise_exception", Value(Callable(raise_exception)));
  globals.set("strftime_now", Value(Callable(strftime_now)));
  return globals;
}

}  // namespace

const Object& builtin_globals() {
  static const Object globals = make_globals();
  return globals;
}

}  // namespace shardlm::jinja
