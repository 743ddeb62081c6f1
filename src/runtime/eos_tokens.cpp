#include "runtime/eos_tokens.h"

namespace shardlm {

std::vector<int32_t> eos_token_ids(const ModelConfig& config, const GenerationConfig& generation,
                                   const Tokenizer& tokenizer) {
  if (!generation.eos_token_ids.empty()) return {generation.eos_token_ids.begin(), generation.eos_token_ids.end()};
  if (!config.eos_token_ids.empty()) return {config.eos_token_ids.begin(), config.eos_token_ids.end()};
  if (tokenizer.eos_token_id()) return {*tokenizer.eos_token_id()};
  return {};
}

}  // namespace shardlm
