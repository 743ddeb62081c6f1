// Token embedding lookup: copies (and widens) one table row per token.
#pragma once

#include <cstdint>
#include <span>

#include "core/weight_view.h"

namespace shardlm::cpu {

// table: (vocab, dim); out: (tokens.size(), dim). Token ids must already be validated.
void embed_tokens(const WeightView& table, std::span<const int32_t> tokens, float* out);

}  // namespace shardlm::cpu
