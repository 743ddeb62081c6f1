// The tokens that end generation, as Transformers picks them: generation_config.json's eos_token_id,
// else config.json's, else the tokenizer's eos token.
#pragma once

#include <cstdint>
#include <vector>

#include "io/generation_config.h"
#include "io/model_config.h"
#include "tokenizer/tokenizer.h"

namespace shardlm {

std::vector<int32_t> eos_token_ids(const ModelConfig& config, const GenerationConfig& generation,
                                   const Tokenizer& tokenizer);

}  // namespace shardlm
