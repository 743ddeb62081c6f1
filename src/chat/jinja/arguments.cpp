#include "chat/jinja/arguments.h"

#include "core/error.h"

namespace shardlm::jinja {

ArgumentReader::ArgumentReader(std::string_view function, const CallArguments& arguments)
    : function_(function), arguments_(arguments), keyword_read_(arguments.keyword.size(), false) {}

Value ArgumentReader::take(std::string_view name, Value fallback) {
  if (next_positional_ < arguments_.positional.size()) return arguments_.positional[next_positional_++];
  for (size_t i = 0; i < arguments_.keyword.size(); ++i)
    if (arguments_.keyword[i].first == name) {
      keyword_read_[i] = true;
      return arguments_.keyword[i].second;
    }
  return fallback;
}

void ArgumentReader::finish() const {
  if (next_positional_ < arguments_.positional.size())
    fail("{}() takes {} positional argument(s), got {}", function_, next_positional_, arguments_.positional.size());
  for (size_t i = 0; i < arguments_.keyword.size(); ++i)
    if (!keyword_read_[i]) fail("{}() got an unexpected keyword argument '{}'", function_, arguments_.keyword[i].first);
}

std::string expect_string(const Value& value, std::string_view what) {
  if (!value.is_string()) fail("{} must be a string, got {}", what, value.type_name());
  return value.as_string();
}

int64_t expect_integer(const Value& value, std::string_view what) {
  if (value.is_bool()) return value.as_bool() ? 1 : 0;
  if (!value.is_integer()) fail("{} must be an integer, got {}", what, value.type_name());
  return value.as_integer();
}

}  // namespace shardlm::jinja
