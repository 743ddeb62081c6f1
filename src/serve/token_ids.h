// A request field that lists token ids (a completion's prompt, /detokenize's tokens).
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace shardlm::serve {

// Each entry must be a non-negative integer that fits int32; throws ApiError (400) naming `field`.
// Whether an id is inside the vocabulary is the model's to say.
std::vector<int32_t> parse_token_ids(const nlohmann::ordered_json& list, const std::string& field);

}  // namespace shardlm::serve
