// Decoders turn the token strings of a list of ids back into text. Like HF, each decoder maps a list
// of strings to a list of strings ("decode_chain") and the results are concatenated at the end.
// Supported types: ByteLevel, ByteFallback, Fuse, Strip, Replace, Metaspace and Sequence.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace shardlm {

class Decoder {
 public:
  virtual ~Decoder() = default;
  virtual void decode_chain(std::vector<std::string>& tokens) const = 0;
};

// Builds the decoder described by tokenizer.json's "decoder" value; null gives nullptr (tokens are
// then joined with spaces, as HF does).
std::unique_ptr<Decoder> make_decoder(const nlohmann::json& config, std::string_view source);

}  // namespace shardlm
