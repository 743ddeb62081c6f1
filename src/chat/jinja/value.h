// The values a template computes with, as @huggingface/jinja holds them: undefined, none, booleans,
// integers, floats, strings, arrays, objects (keys kept in insertion order, as Python dicts and JS
// Maps keep them) and callables (built-in functions, macros, bound methods). Strings, arrays and
// objects are shared and never changed in place, so copying a value is cheap (a list of copies of
// one long string holds it once). Containers nest at most kMaxNesting deep.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

namespace shardlm::jinja {

class Value;
using Array = std::vector<Value>;

// An object's entries in insertion order; templates hold a handful of keys, so a search is cheap.
class Object {
 public:
  const Value* find(const std::string& key) const;
  void set(const std::string& key, Value value);  // replaces in place, or appends
  const std::vector<std::pair<std::string, Value>>& entries() const { return entries_; }

 private:
  std::vector<std::pair<std::string, Value>> entries_;
};

struct CallArguments {
  std::vector<Value> positional;
  std::vector<std::pair<std::string, Value>> keyword;
};
using Callable = std::function<Value(const CallArguments&)>;

struct Undefined {};
struct None {};

// The tojson filter's options: `indent` spaces per level (0: one line, ", " and ": " between items),
// keys sorted, non-ASCII written as \uXXXX per UTF-16 unit.
struct JsonStyle {
  int indent = 0;
  bool sort_keys = false;
  bool ensure_ascii = false;
  std::string item_separator = ", ";  // Python's `separators`; with an indent the items end in ","
  std::string key_separator = ": ";
};

class Value {
 public:
  Value() = default;  // undefined
  Value(None) : data_(None{}) {}
  Value(bool b) : data_(b) {}
  Value(int64_t i) : data_(i) {}
  Value(int i) : data_(int64_t(i)) {}
  Value(double d) : data_(d) {}
  Value(std::string s) : data_(std::make_shared<const std::string>(std::move(s))) {}
  Value(const char* s) : data_(std::make_shared<const std::string>(s)) {}
  // Throw Error when the container would nest deeper than kMaxNesting (its values are destroyed,
  // written out and compared recursively).
  Value(Array a);
  Value(Object o);
  Value(Callable c) : data_(std::make_shared<const Callable>(std::move(c))) {}

  // From JSON as a chat request carries it, as it reaches @huggingface/jinja through JS: a number
  // that is a whole float becomes an integer, and an object's integer-like keys ("2", "10") come
  // first in ascending order, then the others in their order.
  static Value from_json(const nlohmann::ordered_json& json);

  bool is_undefined() const { return std::holds_alternative<Undefined>(data_); }
  bool is_none() const { return std::holds_alternative<None>(data_); }
  bool is_bool() const { return std::holds_alternative<bool>(data_); }
  bool is_integer() const { return std::holds_alternative<int64_t>(data_); }
  bool is_float() const { return std::holds_alternative<double>(data_); }
  bool is_number() const { return is_integer() || is_float(); }
  bool is_string() const { return std::holds_alternative<std::shared_ptr<const std::string>>(data_); }
  bool is_array() const { return std::holds_alternative<std::shared_ptr<const Array>>(data_); }
  bool is_object() const { return std::holds_alternative<std::shared_ptr<const Object>>(data_); }
  bool is_callable() const { return std::holds_alternative<std::shared_ptr<const Callable>>(data_); }
  int nesting() const { return nesting_; }

  bool as_bool() const { return std::get<bool>(data_); }
  int64_t as_integer() const { return std::get<int64_t>(data_); }
  double as_number() const { return is_integer() ? double(as_integer()) : std::get<double>(data_); }
  const std::string& as_string() const { return *std::get<std::shared_ptr<const std::string>>(data_); }
  const Array& as_array() const { return *std::get<std::shared_ptr<const Array>>(data_); }
  const Object& as_object() const { return *std::get<std::shared_ptr<const Object>>(data_); }
  const Callable& as_callable() const { return *std::get<std::shared_ptr<const Callable>>(data_); }

  // The name of the type in error messages ("string", "array", ...).
  const char* type_name() const;
  // Jinja truthiness: false for undefined, none, false, 0, and empty strings, arrays and objects.
  bool truthy() const;
  // What `{{ value }}` writes: as @huggingface/jinja, none and undefined write nothing, booleans
  // "true"/"false", whole floats keep ".0", lists and objects are written as tojson writes them.
  std::string to_output() const;
  // The `tojson` filter: JSON.stringify's escapes; empty lists and objects stay "[]" and "{}".
  std::string to_json(const JsonStyle& style = {}) const;
  // JS's String(value), which `~`, `+` with a string and join use: lists join their items with ","
  // (none and undefined items as ""), objects are "[object Object]". Undefined is "" (the operators
  // refuse none themselves).
  std::string to_js_string() const;
  // Whether two arrays or objects are the same one (JS identity); false for other kinds.
  bool same_container(const Value& other) const;

 private:
  int nesting_ = 0;  // containers inside this one, plus one; 0 for a scalar
  std::variant<Undefined, None, bool, int64_t, double, std::shared_ptr<const std::string>, std::shared_ptr<const Array>,
               std::shared_ptr<const Object>, std::shared_ptr<const Callable>>
      data_;
};

// `==` as @huggingface/jinja compares, with JS's loose equality: numbers by value, a string or a
// boolean against a number as a number ("1" == 1, true == 1, "" == 0), none == undefined, and lists
// and objects only when they are the same one.
bool equal(const Value& a, const Value& b);
// JS's ===, which `in` uses: the same kind and value, containers by identity.
bool identical(const Value& a, const Value& b);
// Items joined as JS's Array.prototype.join does.
std::string js_join(const Array& items, const std::string& separator);

}  // namespace shardlm::jinja
