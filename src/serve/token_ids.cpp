#include "serve/token_ids.h"

#include "serve/api_error.h"

namespace shardlm::serve {

std::vector<int32_t> parse_token_ids(const nlohmann::ordered_json& list, const std::string& field) {
  std::vector<int32_t> ids;
  for (const nlohmann::ordered_json& id : list) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() > INT32_MAX)
      throw ApiError(400, field + ": token ids must be non-negative integers, got " + id.dump(), field);
    ids.push_back(int32_t(id.get<int64_t>()));
  }
  return ids;
}

}  // namespace shardlm::serve
