#include "chat/jinja/filters.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>

#include "chat/jinja/arguments.h"
#include "chat/jinja/limits.h"
#include "chat/jinja/members.h"
#include "chat/jinja/operators.h"
#include "chat/jinja/predicates.h"
#include "chat/jinja/text.h"
#include "core/error.h"

namespace shardlm::jinja {
namespace {

const Array& expect_array(const Value& value, std::string_view filter) {
  if (!value.is_array()) fail("the {} filter needs a list, got {}", filter, value.type_name());
  return value.as_array();
}

// `attribute` may be a dotted path ("function.name") or an integer index, as Jinja's make_attrgetter.
Value attribute_of(const Value& item, const Value& attribute) {
  if (attribute.is_integer()) return subscript(item, attribute);
  const std::string& path = expect_string(attribute, "attribute");
  Value current = item;
  for (const std::string& part : text::split(path, std::string("."), -1, false)) {
    if (current.is_undefined() || current.is_none()) return Value();
    current = current.is_object() ? subscript(current, Value(part)) : member(current, part);
  }
  return current;
}

// select/reject(test, args...) and selectattr/rejectattr(attribute, test, args...).
Value select_items(std::string_view filter, const Value& operand, const CallArguments& arguments, bool by_attribute,
                   bool keep_matches) {
  const Array& items = expect_array(operand, filter);
  if (!arguments.keyword.empty()) fail("the {} filter takes no keyword arguments", filter);
  size_t next = 0;
  Value attribute;
  if (by_attribute) {
    if (arguments.positional.empty()) fail("the {} filter needs an attribute", filter);
    attribute = arguments.positional[next++];
  }
  std::string test;
  if (next < arguments.positional.size()) test = expect_string(arguments.positional[next++], "the test name");
  CallArguments test_arguments;
  test_arguments.positional.assign(arguments.positional.begin() + long(next), arguments.positional.end());
  Array kept;
  for (const Value& item : items) {
    const Value subject = by_attribute ? attribute_of(item, attribute) : item;
    const bool matches = test.empty() ? subject.truthy() : apply_test(test, subject, test_arguments);
    if (matches == keep_matches) kept.push_back(item);
  }
  return Value(std::move(kept));
}

Value map_items(const Value& operand, const CallArguments& arguments) {
  const Array& items = expect_array(operand, "map");
  Array mapped;
  const auto attribute = std::find_if(arguments.keyword.begin(), arguments.keyword.end(),
                                      [](const auto& keyword) { return keyword.first == "attribute"; });
  if (attribute != arguments.keyword.end()) {
    Value fallback;
    for (const auto& [name, value] : arguments.keyword) {
      if (name == "default")
        fallback = value;
      else if (name != "attribute")
        fail("map() got an unexpected keyword argument '{}'", name);
    }
    for (const Value& item : items) {
      Value value = attribute_of(item, attribute->second);
      mapped.push_back(value.is_undefined() ? fallback : std::move(value));
    }
    return Value(std::move(mapped));
  }
  if (arguments.positional.empty()) fail("map() needs a filter name or attribute=");
  const std::string& filter = expect_string(arguments.positional[0], "map()'s filter name");
  CallArguments rest;
  rest.positional.assign(arguments.positional.begin() + 1, arguments.positional.end());
  rest.keyword = arguments.keyword;
  for (const Value& item : items) mapped.push_back(apply_filter(filter, item, rest));
  return Value(std::move(mapped));
}

std::string html_escape(const std::string& text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&#34;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

// Orders values for sort/dictsort: numbers by value, strings (lower-cased unless case_sensitive).
bool ordered_before(const Value& a, const Value& b, bool case_sensitive) {
  if (a.is_string() && b.is_string() && !case_sensitive) return text::lower(a.as_string()) < text::lower(b.as_string());
  return binary("<", a, b).truthy();
}

Value indent_lines(const std::string& text, const Value& width, bool first, bool blank) {
  const std::string pad = width.is_string() ? width.as_string() : std::string(size_t(std::clamp<int64_t>(expect_integer(width, "indent()'s width"), 0, 1024)), ' ');
  std::string out;
  const std::vector<std::string> lines = text::split(text, std::string("\n"), -1, false);
  for (size_t i = 0; i < lines.size(); ++i) {
    if (i > 0) out += '\n';
    const bool indent = (i > 0 || first) && (blank || !lines[i].empty());
    if (indent) out += pad;
    out += lines[i];
    check_string_size(out.size(), "indent");
  }
  return Value(std::move(out));
}

}  // namespace

Value apply_filter(std::string_view name, const Value& operand, const CallArguments& arguments) {
  if (name == "select" || name == "reject") return select_items(name, operand, arguments, false, name == "select");
  if (name == "selectattr" || name == "rejectattr")
    return select_items(name, operand, arguments, true, name == "selectattr");
  if (name == "map") return map_items(operand, arguments);

  ArgumentReader reader(name, arguments);
  auto done = [&](Value result) {
    reader.finish();
    return result;
  };
  if (name == "length" || name == "count") {
    if (operand.is_string()) return done(Value(int64_t(text::length(operand.as_string()))));
    if (operand.is_array()) return done(Value(int64_t(operand.as_array().size())));
    if (operand.is_object()) return done(Value(int64_t(operand.as_object().entries().size())));
    fail("the length filter needs a string, list or object, got {}", operand.type_name());
  }
  if (name == "upper") return done(Value(text::upper(operand.to_output())));
  if (name == "lower") return done(Value(text::lower(operand.to_output())));
  if (name == "title") return done(Value(text::title(operand.to_output())));
  if (name == "capitalize") return done(Value(text::capitalize(operand.to_output())));
  if (name == "trim") {
    reader.take("chars");  // read and, as @huggingface/jinja does, not acted on: whitespace goes
    return done(Value(text::strip(operand.to_output(), true, true)));
  }
  if (name == "string") return done(Value(operand.to_output()));
  if (name == "safe") return done(operand);
  if (name == "escape" || name == "e") return done(Value(html_escape(operand.to_output())));
  if (name == "default" || name == "d") {
    const Value fallback = reader.take("default_value", Value(std::string()));
    const bool boolean = reader.take("boolean", Value(false)).truthy();
    return done(operand.is_undefined() || (boolean && !operand.truthy()) ? fallback : operand);
  }
  if (name == "tojson") {
    const Value indent = reader.take("indent");
    JsonStyle style;
    style.indent = indent.is_undefined() || indent.is_none() ? 0 : int(std::clamp<int64_t>(expect_integer(indent, "tojson()'s indent"), 0, 64));
    style.ensure_ascii = reader.take("ensure_ascii", Value(false)).truthy();
    style.sort_keys = reader.take("sort_keys", Value(false)).truthy();
    const Value separators = reader.take("separators");
    if (!separators.is_undefined() && !separators.is_none()) {
      if (!separators.is_array() || separators.as_array().size() != 2)
        fail("tojson()'s separators must be a pair of strings (item, key)");
      style.item_separator = expect_string(separators.as_array()[0], "tojson()'s item separator");
      style.key_separator = expect_string(separators.as_array()[1], "tojson()'s key separator");
    }
    return done(Value(operand.to_json(style)));
  }
  if (name == "join") {
    const std::string separator = reader.take("d", Value(std::string())).to_output();
    const Value attribute = reader.take("attribute");
    Array items = operand.is_string() ? Array{operand} : expect_array(operand, "join");
    if (!attribute.is_undefined())
      for (Value& item : items) item = attribute_of(item, attribute);
    std::string joined = js_join(items, separator);
    check_string_size(joined.size(), "join");
    return done(Value(std::move(joined)));
  }
  if (name == "first" || name == "last") {
    if (operand.is_string()) {
      const auto points = text::code_points(operand.as_string());
      if (points.empty()) return done(Value());
      return done(Value(text::from_code_points({name == "first" ? points.front() : points.back()})));
    }
    const Array& items = expect_array(operand, name);
    if (items.empty()) return done(Value());
    return done(name == "first" ? items.front() : items.back());
  }
  if (name == "reverse") {
    if (operand.is_string()) {
      auto points = text::code_points(operand.as_string());
      std::reverse(points.begin(), points.end());
      return done(Value(text::from_code_points(points)));
    }
    Array items = expect_array(operand, "reverse");
    std::reverse(items.begin(), items.end());
    return done(Value(std::move(items)));
  }
  if (name == "list") {
    if (operand.is_array()) return done(operand);
    Array items;
    if (operand.is_string()) {
      const std::vector<char32_t> points = text::code_points(operand.as_string());
      check_array_size(points.size(), "the list filter");
      for (char32_t point : points) items.emplace_back(text::from_code_points({point}));
    } else if (operand.is_object()) {
      for (const auto& entry : operand.as_object().entries()) items.emplace_back(entry.first);
    } else {
      fail("the list filter needs a string, list or object, got {}", operand.type_name());
    }
    return done(Value(std::move(items)));
  }
  if (name == "items" || name == "dictsort") {
    if (!operand.is_object()) fail("the {} filter needs an object, got {}", name, operand.type_name());
    Array pairs;
    for (const auto& [key, value] : operand.as_object().entries()) pairs.emplace_back(Array{Value(key), value});
    if (name == "dictsort") {
      const bool case_sensitive = reader.take("case_sensitive", Value(false)).truthy();
      const std::string by = reader.take("by", Value("key")).to_output();
      const bool reverse = reader.take("reverse", Value(false)).truthy();
      const size_t field = by == "value" ? 1 : 0;
      std::stable_sort(pairs.begin(), pairs.end(), [&](const Value& a, const Value& b) {
        return ordered_before(a.as_array()[field], b.as_array()[field], case_sensitive);
      });
      if (reverse) std::reverse(pairs.begin(), pairs.end());
    }
    return done(Value(std::move(pairs)));
  }
  if (name == "sort") {
    const bool reverse = reader.take("reverse", Value(false)).truthy();
    const bool case_sensitive = reader.take("case_sensitive", Value(false)).truthy();
    const Value attribute = reader.take("attribute");
    Array items = expect_array(operand, "sort");
    auto key = [&](const Value& item) { return attribute.is_undefined() ? item : attribute_of(item, attribute); };
    std::stable_sort(items.begin(), items.end(),
                     [&](const Value& a, const Value& b) { return ordered_before(key(a), key(b), case_sensitive); });
    if (reverse) std::reverse(items.begin(), items.end());
    return done(Value(std::move(items)));
  }
  if (name == "unique") {
    Array kept;
    for (const Value& item : expect_array(operand, "unique"))
      if (std::none_of(kept.begin(), kept.end(), [&](const Value& seen) { return identical(seen, item); })) kept.push_back(item);
    return done(Value(std::move(kept)));
  }
  if (name == "replace") {
    const std::string& old = expect_string(reader.take("old"), "replace()'s old");
    const std::string& replacement = expect_string(reader.take("new"), "replace()'s new");
    const Value count = reader.take("count");
    return done(Value(text::replace(operand.to_output(), old, replacement,
                                    count.is_undefined() || count.is_none() ? -1 : expect_integer(count, "replace()'s count"))));
  }
  // As JS's parseInt / parseFloat: the longest number at the start ("12abc" is 12, "3.9"|int is 3).
  if (name == "int") {
    const Value fallback = reader.take("default", Value(0));
    if (operand.is_integer()) return done(operand);
    if (operand.is_bool()) return done(Value(int64_t(operand.as_bool())));
    if (operand.is_float()) {
      const double number = operand.as_number();
      return done(number > -9.2e18 && number < 9.2e18 ? Value(int64_t(number)) : fallback);
    }
    if (operand.is_string()) {
      const std::string trimmed = text::strip(operand.as_string(), true, false);
      errno = 0;
      char* end = nullptr;
      const long long number = std::strtoll(trimmed.c_str(), &end, 10);
      if (end != trimmed.c_str() && errno == 0) return done(Value(int64_t(number)));
    }
    return done(fallback);
  }
  if (name == "float") {
    const Value fallback = reader.take("default", Value(0.0));
    if (operand.is_number()) return done(Value(operand.as_number()));
    if (operand.is_bool()) return done(Value(operand.as_bool() ? 1.0 : 0.0));
    if (operand.is_string()) {
      const std::string trimmed = text::strip(operand.as_string(), true, false);
      char* end = nullptr;
      const double number = std::strtod(trimmed.c_str(), &end);
      if (end != trimmed.c_str()) return done(Value(number));
    }
    return done(fallback);
  }
  if (name == "abs") {
    if (operand.is_integer()) {
      if (operand.as_integer() == INT64_MIN) fail("abs() overflows a 64-bit integer");
      return done(Value(operand.as_integer() < 0 ? -operand.as_integer() : operand.as_integer()));
    }
    if (operand.is_float()) return done(Value(std::fabs(operand.as_number())));
    fail("the abs filter needs a number, got {}", operand.type_name());
  }
  if (name == "round") {
    const int64_t precision = std::clamp<int64_t>(expect_integer(reader.take("precision", Value(0)), "round()'s precision"), 0, 15);
    const std::string method = reader.take("method", Value("common")).to_output();
    if (!operand.is_number()) fail("the round filter needs a number, got {}", operand.type_name());
    const double scale = std::pow(10.0, double(precision));
    const double scaled = operand.as_number() * scale;
    const double rounded = method == "floor" ? std::floor(scaled) : method == "ceil" ? std::ceil(scaled) : std::round(scaled);
    return done(Value(rounded / scale));
  }
  if (name == "indent") {
    const Value width = reader.take("width", Value(4));
    const bool first = reader.take("first", Value(false)).truthy();
    const bool blank = reader.take("blank", Value(false)).truthy();
    return done(indent_lines(operand.to_output(), width, first, blank));
  }
  if (name == "min" || name == "max" || name == "sum") {
    const Array& items = expect_array(operand, name);
    const Value attribute = reader.take("attribute");
    auto key = [&](const Value& item) { return attribute.is_undefined() ? item : attribute_of(item, attribute); };
    if (name == "sum") {
      Value total = reader.take("start", Value(0));
      for (const Value& item : items) total = binary("+", total, key(item));
      return done(total);
    }
    if (items.empty()) return done(Value());
    Value best = items.front();
    for (const Value& item : items)
      if (ordered_before(key(item), key(best), false) == (name == "min") && !equal(key(item), key(best))) best = item;
    return done(best);
  }
  if (name == "wordcount") return done(Value(int64_t(text::split(operand.to_output(), std::nullopt, -1, false).size())));
  fail("unknown filter '{}'", name);
}

}  // namespace shardlm::jinja
