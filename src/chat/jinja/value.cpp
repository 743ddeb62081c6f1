#include "chat/jinja/value.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <optional>

#include <fmt/format.h>

#include "chat/jinja/limits.h"
#include "core/error.h"
#include "tokenizer/utf8.h"

namespace shardlm::jinja {

const Value* Object::find(const std::string& key) const {
  for (const auto& [name, value] : entries_)
    if (name == key) return &value;
  return nullptr;
}

void Object::set(const std::string& key, Value value) {
  for (auto& [name, existing] : entries_)
    if (name == key) {
      existing = std::move(value);
      return;
    }
  entries_.emplace_back(key, std::move(value));
}

namespace {

int nesting_of(const Value& child) { return child.is_array() || child.is_object() ? child.nesting() : 0; }

void check_nesting(int nesting) {
  if (nesting > kMaxNesting) fail("lists and objects nest deeper than {} levels", kMaxNesting);
}

}  // namespace

Value::Value(Array a) {
  int deepest = 0;
  for (const Value& item : a) deepest = std::max(deepest, nesting_of(item));
  check_nesting(deepest + 1);
  nesting_ = deepest + 1;
  data_ = std::make_shared<const Array>(std::move(a));
}

Value::Value(Object o) {
  int deepest = 0;
  for (const auto& entry : o.entries()) deepest = std::max(deepest, nesting_of(entry.second));
  check_nesting(deepest + 1);
  nesting_ = deepest + 1;
  data_ = std::make_shared<const Object>(std::move(o));
}

Value Value::from_json(const nlohmann::ordered_json& json) {
  switch (json.type()) {
    case nlohmann::json::value_t::null: return Value(None{});
    case nlohmann::json::value_t::boolean: return Value(json.get<bool>());
    case nlohmann::json::value_t::number_integer: return Value(json.get<int64_t>());
    case nlohmann::json::value_t::number_unsigned: {
      const uint64_t number = json.get<uint64_t>();
      if (number <= uint64_t(INT64_MAX)) return Value(int64_t(number));
      return Value(double(number));
    }
    case nlohmann::json::value_t::number_float: {
      const double number = json.get<double>();
      if (std::isfinite(number) && number == std::trunc(number) && std::fabs(number) < 9.007199254740992e15)
        return Value(int64_t(number));
      return Value(number);
    }
    case nlohmann::json::value_t::string: return Value(json.get<std::string>());
    case nlohmann::json::value_t::array: {
      Array items;
      items.reserve(json.size());
      for (const auto& item : json) items.push_back(from_json(item));
      return Value(std::move(items));
    }
    case nlohmann::json::value_t::object: {
      // JS orders an object's array-index keys (canonical integers below 2^32 - 1) first, ascending.
      auto index_of = [](const std::string& key) -> std::optional<uint64_t> {
        if (key.empty() || key.size() > 10 || (key.size() > 1 && key[0] == '0')) return std::nullopt;
        uint64_t number = 0;
        for (char c : key) {
          if (c < '0' || c > '9') return std::nullopt;
          number = number * 10 + uint64_t(c - '0');
        }
        return number < 4294967295u ? std::optional(number) : std::nullopt;
      };
      std::vector<std::pair<uint64_t, std::string>> indices;
      for (const auto& [key, item] : json.items())
        if (const auto index = index_of(key)) indices.emplace_back(*index, key);
      std::sort(indices.begin(), indices.end());
      Object object;
      for (const auto& [index, key] : indices) object.set(key, from_json(json.at(key)));
      for (const auto& [key, item] : json.items())
        if (!index_of(key)) object.set(key, from_json(item));
      return Value(std::move(object));
    }
    default: return Value();
  }
}

const char* Value::type_name() const {
  if (is_undefined()) return "undefined";
  if (is_none()) return "none";
  if (is_bool()) return "boolean";
  if (is_integer()) return "integer";
  if (is_float()) return "float";
  if (is_string()) return "string";
  if (is_array()) return "array";
  if (is_object()) return "object";
  return "function";
}

bool Value::truthy() const {
  if (is_bool()) return as_bool();
  if (is_integer()) return as_integer() != 0;
  if (is_float()) return as_number() != 0.0;
  if (is_string()) return !as_string().empty();
  if (is_array()) return !as_array().empty();
  if (is_object()) return !as_object().entries().empty();
  return is_callable();
}

namespace {

// A float as JS writes it (the shortest digits that read back the same), whole ones without ".0".
std::string js_number(double number) {
  if (std::isnan(number)) return "NaN";
  if (std::isinf(number)) return number > 0 ? "Infinity" : "-Infinity";
  if (number == std::trunc(number) && std::fabs(number) < 1e21) return fmt::format("{:.0f}", number);
  return fmt::format("{}", number);
}

void append_json_string(std::string& out, const std::string& text, bool ensure_ascii) {
  out += '"';
  for (size_t position = 0; position < text.size();) {
    const unsigned char c = static_cast<unsigned char>(text[position]);
    if (c >= 0x80) {
      const size_t begin = position;
      const char32_t point = utf8::decode_next(text, position);
      if (!ensure_ascii) {
        out.append(text, begin, position - begin);
      } else if (point < 0x10000) {
        out += fmt::format("\\u{:04x}", uint32_t(point));
      } else {  // a surrogate pair, as JS holds the character
        const uint32_t offset = uint32_t(point) - 0x10000;
        out += fmt::format("\\u{:04x}\\u{:04x}", 0xD800 + (offset >> 10), 0xDC00 + (offset & 0x3FF));
      }
      continue;
    }
    ++position;
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20)
          out += fmt::format("\\u{:04x}", c);
        else
          out += char(c);
    }
  }
  out += '"';
  check_string_size(out.size(), "tojson");
}

void append_json(std::string& out, const Value& value, const JsonStyle& style, int depth) {
  const int indent = style.indent;
  if (value.is_undefined() || value.is_none()) {
    out += "null";
  } else if (value.is_bool()) {
    out += value.as_bool() ? "true" : "false";
  } else if (value.is_integer()) {
    out += std::to_string(value.as_integer());
  } else if (value.is_float()) {
    out += js_number(value.as_number());
  } else if (value.is_string()) {
    append_json_string(out, value.as_string(), style.ensure_ascii);
  } else if (value.is_array() ? value.as_array().empty() : value.is_object() && value.as_object().entries().empty()) {
    out += value.is_array() ? "[]" : "{}";
  } else if (value.is_array() || value.is_object()) {
    std::string base(size_t(indent) * size_t(depth) + 1, ' ');
    base[0] = '\n';
    const std::string child = base + std::string(size_t(indent), ' ');
    const bool array = value.is_array();
    out += array ? '[' : '{';
    bool first = true;
    auto separate = [&] {
      if (indent > 0) {
        if (!first) out += ',';
        out += child;
      } else if (!first) {
        out += style.item_separator;
      }
      first = false;
    };
    if (array) {
      for (const Value& item : value.as_array()) {
        separate();
        append_json(out, item, style, depth + 1);
      }
    } else {
      std::vector<const std::pair<std::string, Value>*> entries;
      for (const auto& entry : value.as_object().entries()) entries.push_back(&entry);
      if (style.sort_keys)
        std::stable_sort(entries.begin(), entries.end(), [](const auto* a, const auto* b) { return a->first < b->first; });
      for (const auto* entry : entries) {
        separate();
        append_json_string(out, entry->first, style.ensure_ascii);
        out += style.key_separator;
        append_json(out, entry->second, style, depth + 1);
      }
    }
    if (indent > 0) out += base;
    out += array ? ']' : '}';
  } else {
    fail("tojson: a function cannot be written as JSON");
  }
}

}  // namespace

std::string Value::to_output() const {
  if (is_undefined()) return "";
  if (is_none()) return "";
  if (is_bool()) return as_bool() ? "true" : "false";
  if (is_integer()) return std::to_string(as_integer());
  if (is_float()) {
    const double number = as_number();
    if (number == std::trunc(number) && std::fabs(number) < 1e16) return fmt::format("{:.1f}", number);
    return js_number(number);
  }
  if (is_string()) return as_string();
  if (is_callable()) return "<function>";
  return to_json();
}

std::string Value::to_json(const JsonStyle& style) const {
  std::string out;
  append_json(out, *this, style, 0);
  return out;
}

namespace {

// How @huggingface/jinja writes a value that sits inside a list being turned into text.
std::string item_text(const Value& item) {
  if (item.is_undefined() || item.is_none()) return "undefined";
  if (item.is_object()) return "[object Map]";
  return item.to_output();
}

std::string joined_items(const Array& items) {
  std::string text;
  for (size_t i = 0; i < items.size(); ++i) {
    if (i > 0) text += ',';
    text += item_text(items[i]);
    check_string_size(text.size(), "a list written as text");
  }
  return text;
}

}  // namespace

std::string Value::to_js_string() const {
  if (is_number()) return is_integer() ? std::to_string(as_integer()) : js_number(as_number());
  if (is_array()) return joined_items(as_array());
  if (is_object()) return "[object Map]";
  return to_output();
}

bool Value::same_container(const Value& other) const {
  if (is_array() && other.is_array()) return &as_array() == &other.as_array();
  if (is_object() && other.is_object()) return &as_object() == &other.as_object();
  return false;
}

std::string js_join(const Array& items, const std::string& separator) {
  std::string text;
  for (size_t i = 0; i < items.size(); ++i) {
    if (i > 0) text += separator;
    const Value& item = items[i];
    if (!item.is_undefined() && !item.is_none()) text += item.to_js_string();
    check_string_size(text.size(), "join");
  }
  return text;
}

namespace {

// JS's Number(text) for loose equality: surrounding whitespace ignored, "" is 0, anything else
// that is not wholly a number is NaN.
double js_to_number(const std::string& text) {
  const size_t begin = text.find_first_not_of(" \t\n\r\v\f");
  if (begin == std::string::npos) return 0.0;
  const std::string trimmed = text.substr(begin, text.find_last_not_of(" \t\n\r\v\f") - begin + 1);
  char* end = nullptr;
  const double number = std::strtod(trimmed.c_str(), &end);
  return end == trimmed.c_str() + trimmed.size() ? number : std::nan("");
}

double loose_number(const Value& value) {
  if (value.is_bool()) return value.as_bool() ? 1.0 : 0.0;
  if (value.is_string()) return js_to_number(value.as_string());
  return value.as_number();
}

}  // namespace

bool identical(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) return a.as_number() == b.as_number();
  if (a.is_string() && b.is_string()) return a.as_string() == b.as_string();
  if (a.is_bool() && b.is_bool()) return a.as_bool() == b.as_bool();
  if (a.is_none() || a.is_undefined()) return a.is_none() == b.is_none() && a.is_undefined() == b.is_undefined();
  return a.same_container(b);
}

bool equal(const Value& a, const Value& b) {
  const bool a_missing = a.is_none() || a.is_undefined();
  const bool b_missing = b.is_none() || b.is_undefined();
  if (a_missing || b_missing) return a_missing && b_missing;
  if (a.is_string() && b.is_string()) return a.as_string() == b.as_string();
  const bool a_scalar = a.is_number() || a.is_bool() || a.is_string();
  const bool b_scalar = b.is_number() || b.is_bool() || b.is_string();
  if (a_scalar && b_scalar) return loose_number(a) == loose_number(b);
  return a.same_container(b);
}

}  // namespace shardlm::jinja
