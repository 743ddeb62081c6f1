// Normalizers: the first stage of encoding, applied to each stretch of text between added tokens.
// Supported types: NFC, NFD, NFKC, NFKD (utf8proc), Prepend, Replace and Sequence. That covers the
// byte-level families (none or NFC) and SentencePiece-style Llama/Mistral (Prepend "▁" + Replace " ").
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace shardlm {

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  // `text` is valid UTF-8 and so is the result.
  virtual std::string normalize(std::string_view text) const = 0;
};

// Builds the normalizer described by tokenizer.json's "normalizer" value; null gives nullptr.
// `source` names the file in errors, e.g. `tokenizer.json: unsupported normalizer type "Lowercase"`.
std::unique_ptr<Normalizer> make_normalizer(const nlohmann::json& config, std::string_view source);

}  // namespace shardlm
