// The {"String": ...} / {"Regex": ...} pattern object that Replace and Split components carry.
#pragma once

#include <string_view>

#include <nlohmann/json.hpp>

#include "tokenizer/regex.h"

namespace shardlm {

Regex compile_pattern(const nlohmann::json& pattern, std::string_view where);

}  // namespace shardlm
