// Post-processing for a single sequence: the special-token ids placed before and after the encoded
// text (TemplateProcessing's "single" template, e.g. "<|begin_of_text|> $A"). ByteLevel only fixes
// offsets and adds nothing; Sequence composes its steps. Pair templates are not used by the engine.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace shardlm {

struct SpecialTokenTemplate {
  std::vector<int32_t> before;
  std::vector<int32_t> after;
};

// Reads tokenizer.json's "post_processor" value; null gives an empty template.
SpecialTokenTemplate make_post_processor(const nlohmann::json& config, std::string_view source);

}  // namespace shardlm
