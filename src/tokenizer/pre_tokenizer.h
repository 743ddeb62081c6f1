// Pre-tokenizers cut normalized text into words that the BPE model encodes independently (and caches).
// Supported types: ByteLevel, Split, Metaspace and Sequence, which is what GPT-2, Llama-3, Qwen2 and
// the SentencePiece-converted Llama-2/Mistral tokenizers use.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace shardlm {

struct PreToken {
  std::string text;
  // True when this piece begins at byte 0 of the caller's original input; Metaspace's "first" prepend
  // scheme adds its "▁" only there (HF checks offsets_original().0 == 0).
  bool at_text_start = false;
};

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  // Replaces each piece by its sub-pieces. Empty pieces are dropped, as HF does.
  virtual void pre_tokenize(std::vector<PreToken>& pieces) const = 0;
};

// Builds the pre-tokenizer described by tokenizer.json's "pre_tokenizer" value; null gives nullptr.
std::unique_ptr<PreTokenizer> make_pre_tokenizer(const nlohmann::json& config, std::string_view source);

}  // namespace shardlm
