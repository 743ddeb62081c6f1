#include "chat/jinja/members.h"

#include <cmath>

#include "chat/jinja/arguments.h"
#include "chat/jinja/limits.h"
#include "chat/jinja/text.h"
#include "core/error.h"

namespace shardlm::jinja {
namespace {

std::optional<std::string> optional_string(const Value& value, std::string_view what) {
  if (value.is_undefined() || value.is_none()) return std::nullopt;
  return expect_string(value, what);
}

// startswith/endswith take a string or a tuple (list) of strings.
bool affix_matches(const std::string& text, const Value& affixes, bool prefix) {
  auto one = [&](const Value& affix) {
    const std::string& needle = expect_string(affix, prefix ? "startswith()'s argument" : "endswith()'s argument");
    return prefix ? text.starts_with(needle) : text.ends_with(needle);
  };
  if (!affixes.is_array()) return one(affixes);
  for (const Value& affix : affixes.as_array())
    if (one(affix)) return true;
  return false;
}

Value string_method(const std::string& text, const std::string& name) {
  auto method = [&](auto body) {
    return Value(Callable([text, name, body](const CallArguments& arguments) -> Value {
      ArgumentReader reader(name, arguments);
      Value result = body(reader);
      reader.finish();
      return result;
    }));
  };
  if (name == "upper") return method([text](ArgumentReader&) { return Value(text::upper(text)); });
  if (name == "lower") return method([text](ArgumentReader&) { return Value(text::lower(text)); });
  if (name == "title") return method([text](ArgumentReader&) { return Value(text::title(text)); });
  if (name == "capitalize") return method([text](ArgumentReader&) { return Value(text::capitalize(text)); });
  if (name == "strip" || name == "lstrip" || name == "rstrip")
    return method([text, name](ArgumentReader& reader) {
      // @huggingface/jinja strips whitespace whatever characters are asked for (Qwen3's
      // .strip('\n') included); the argument is read so that it is no error.
      reader.take("chars");
      return Value(text::strip(text, name != "rstrip", name != "lstrip"));
    });
  if (name == "split" || name == "rsplit")
    return method([text, name](ArgumentReader& reader) {
      const auto separator = optional_string(reader.take("sep"), name + "()'s separator");
      const int64_t max_split = expect_integer(reader.take("maxsplit", Value(-1)), name + "()'s maxsplit");
      Array parts;
      for (std::string& part : text::split(text, separator, max_split, name == "rsplit")) parts.emplace_back(std::move(part));
      return Value(std::move(parts));
    });
  if (name == "startswith" || name == "endswith")
    return method([text, name](ArgumentReader& reader) {
      return Value(affix_matches(text, reader.take("prefix"), name == "startswith"));
    });
  if (name == "replace")
    return method([text](ArgumentReader& reader) {
      const std::string& old = expect_string(reader.take("old"), "replace()'s old");
      const std::string& replacement = expect_string(reader.take("new"), "replace()'s new");
      const int64_t count = expect_integer(reader.take("count", Value(-1)), "replace()'s count");
      return Value(text::replace(text, old, replacement, count));
    });
  if (name == "find")
    return method([text](ArgumentReader& reader) {
      const size_t found = text.find(expect_string(reader.take("sub"), "find()'s argument"));  // in UTF-16 units, as JS
      return Value(found == std::string::npos ? int64_t(-1) : int64_t(text::length(text.substr(0, found))));
    });
  if (name == "join")
    return method([text](ArgumentReader& reader) {
      const Value items = reader.take("iterable");
      if (!items.is_array()) fail("join() needs a list, got {}", items.type_name());
      std::string joined;
      for (size_t i = 0; i < items.as_array().size(); ++i) {
        if (i > 0) joined += text;
        joined += expect_string(items.as_array()[i], "an item joined");
        check_string_size(joined.size(), "join()");
      }
      return Value(std::move(joined));
    });
  return Value();
}

Value object_method(const Value& object, const std::string& name) {
  auto method = [&](auto body) {
    return Value(Callable([object, name, body](const CallArguments& arguments) -> Value {
      ArgumentReader reader(name, arguments);
      Value result = body(reader);
      reader.finish();
      return result;
    }));
  };
  if (name == "items")
    return method([object](ArgumentReader&) {
      Array pairs;
      for (const auto& [key, value] : object.as_object().entries()) pairs.emplace_back(Array{Value(key), value});
      return Value(std::move(pairs));
    });
  if (name == "keys")
    return method([object](ArgumentReader&) {
      Array keys;
      for (const auto& entry : object.as_object().entries()) keys.emplace_back(entry.first);
      return Value(std::move(keys));
    });
  if (name == "values")
    return method([object](ArgumentReader&) {
      Array values;
      for (const auto& entry : object.as_object().entries()) values.push_back(entry.second);
      return Value(std::move(values));
    });
  if (name == "get")
    return method([object](ArgumentReader& reader) {
      const Value key = reader.take("key");
      const Value fallback = reader.take("default", Value(None{}));
      if (!key.is_string()) return fallback;
      const Value* found = object.as_object().find(key.as_string());
      return found != nullptr ? *found : fallback;
    });
  return Value();
}

// Python's index normalisation: negative counts from the end.
std::optional<size_t> index_into(int64_t index, size_t size) {
  if (index < 0) index += int64_t(size);
  if (index < 0 || index >= int64_t(size)) return std::nullopt;
  return size_t(index);
}

}  // namespace

Value member(const Value& object, const std::string& name) {
  if (object.is_object()) {
    if (const Value* found = object.as_object().find(name)) return *found;
    return object_method(object, name);
  }
  if (object.is_string()) return string_method(object.as_string(), name);
  return Value();
}

Value subscript(const Value& object, const Value& key) {
  if (object.is_undefined() || object.is_none()) fail("cannot index {} with a {}", object.type_name(), key.type_name());
  if (object.is_array()) {
    if (!key.is_integer()) fail("a list index must be an integer, got {}", key.type_name());
    const auto index = index_into(key.as_integer(), object.as_array().size());
    return index ? object.as_array()[*index] : Value();
  }
  if (object.is_string()) {
    if (!key.is_integer()) fail("a string index must be an integer, got {}", key.type_name());
    const std::vector<char32_t> points = text::code_points(object.as_string());
    const auto index = index_into(key.as_integer(), points.size());
    return index ? Value(text::from_code_points({points[*index]})) : Value();
  }
  if (object.is_object()) {
    if (!key.is_string()) return Value();
    if (const Value* found = object.as_object().find(key.as_string())) return *found;
    return object_method(object, key.as_string());
  }
  return Value();
}

namespace {

// Python's slice.indices + the walk it describes.
std::vector<size_t> slice_positions(size_t size, std::optional<int64_t> start, std::optional<int64_t> stop,
                                    std::optional<int64_t> step) {
  const int64_t n = int64_t(size);
  const int64_t stride = step.value_or(1);
  if (stride == 0) fail("slice step cannot be zero");
  auto clamp = [&](std::optional<int64_t> bound, int64_t fallback) {
    if (!bound) return fallback;
    int64_t value = *bound;
    if (value < 0) value += n;
    if (stride > 0) return std::clamp<int64_t>(value, 0, n);
    return std::clamp<int64_t>(value, -1, n - 1);
  };
  const int64_t first = clamp(start, stride > 0 ? 0 : n - 1);
  const int64_t last = clamp(stop, stride > 0 ? n : -1);
  // Counted first: stepping by a huge stride must not overflow past the end.
  // In long double (64-bit mantissa), exact for int64 values, so no step or negation overflows.
  const long double span = stride > 0 ? (long double)last - first : (long double)first - last;
  const long double magnitude = stride > 0 ? (long double)stride : -(long double)stride;
  const int64_t count = span <= 0 ? 0 : int64_t(std::floor((span - 1) / magnitude) + 1);  // at most the length
  std::vector<size_t> positions;
  for (int64_t k = 0; k < count; ++k)
    positions.push_back(size_t((long double)first + (stride > 0 ? 1.0L : -1.0L) * (long double)k * magnitude));
  return positions;
}

}  // namespace

Value slice(const Value& object, std::optional<int64_t> start, std::optional<int64_t> stop, std::optional<int64_t> step) {
  if (object.is_array()) {
    Array items;
    for (size_t i : slice_positions(object.as_array().size(), start, stop, step)) items.push_back(object.as_array()[i]);
    return Value(std::move(items));
  }
  if (object.is_string()) {
    const std::vector<char32_t> points = text::code_points(object.as_string());
    std::vector<char32_t> picked;
    for (size_t i : slice_positions(points.size(), start, stop, step)) picked.push_back(points[i]);
    return Value(text::from_code_points(picked));
  }
  fail("cannot slice {}", object.type_name());
}

}  // namespace shardlm::jinja
