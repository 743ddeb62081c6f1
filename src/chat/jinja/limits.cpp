#include "chat/jinja/limits.h"

#include "core/error.h"

namespace shardlm::jinja {

void check_string_size(size_t bytes, const char* what) {
  if (bytes > kMaxStringBytes) fail("{} would build a string of {} bytes, over the {} byte limit", what, bytes, kMaxStringBytes);
}

void check_array_size(size_t items, const char* what) {
  if (items > kMaxArrayItems) fail("{} would build a list of {} items, over the {} item limit", what, items, kMaxArrayItems);
}

}  // namespace shardlm::jinja
