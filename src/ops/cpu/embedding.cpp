// Embedding lookup.
#include "ops/cpu/embedding.h"

namespace shardlm::cpu {

void embed_tokens(const WeightView& table, std::span<const int32_t> tokens, float* out) {
  for (size_t i = 0; i < tokens.size(); ++i)
    table.row_to_f32(tokens[i], 0, table.cols, out + int64_t(i) * table.cols);
}

}  // namespace shardlm::cpu
