// The tokenizer of a Hugging Face checkpoint, loaded from tokenizer.json (+ tokenizer_config.json) and
// producing the same ids as Transformers' tokenizer(text)["input_ids"] for byte-level BPE (GPT-2,
// Llama-3, Qwen2) and SentencePiece-style BPE (Llama-2, Mistral). Encoding runs HF's pipeline: split
// out added tokens, normalize, pre-tokenize, BPE, add the template's special tokens. Decoding runs the
// decoder chain. StreamingDetokenizer turns generated ids into text one id at a time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace shardlm {

class Tokenizer {
 public:
  // Reads DIR/tokenizer.json and, if present, DIR/tokenizer_config.json. Throws Error naming the file
  // and the problem.
  static Tokenizer from_dir(const std::filesystem::path& model_dir);
  // The same from file contents; `tokenizer_config_json` may be empty. `source_name` names the
  // tokenizer.json in error messages.
  static Tokenizer from_json(std::string_view tokenizer_json, std::string_view tokenizer_config_json, const std::string& source_name);

  // Ids of valid UTF-8 `text` (throws Error otherwise). With add_special_tokens the post-processor's
  // special tokens (e.g. BOS) are added.
  std::vector<int32_t> encode(std::string_view text, bool add_special_tokens = true) const;
  // Text of `ids`; invalid UTF-8 produced by byte tokens becomes U+FFFD as in HF. Throws Error for an
  // id that is not in the vocabulary.
  std::string decode(std::span<const int32_t> ids, bool skip_special_tokens = false) const;

  // Number of distinct tokens including added tokens (Transformers' len(tokenizer)).
  size_t vocab_size() const;
  std::optional<int32_t> token_to_id(std::string_view token) const;
  // The token's string as stored in the vocabulary (e.g. "Ġthe" or "▁the"); nullopt if unknown.
  std::optional<std::string> id_to_token(int32_t id) const;
  // From tokenizer_config.json's bos_token / eos_token, else from the post-processor template.
  std::optional<int32_t> bos_token_id() const;
  std::optional<int32_t> eos_token_id() const;
  // Whether `id` is a special added token (the ones skip_special_tokens removes).
  bool is_special(int32_t id) const;

 private:
  struct Impl;
  explicit Tokenizer(std::shared_ptr<const Impl> impl);
  // Immutable once loaded, so copies share it and concurrent encode/decode calls are safe.
  std::shared_ptr<const Impl> impl_;
};

// Incremental detokenization for streaming generation: push one id at a time and get back only text
// that no later id can change. It decodes a short window of ids (the last emitted ones as context,
// then the new ones) and releases the new suffix once it does not end in U+FFFD, i.e. once no UTF-8
// character is cut in half; the context keeps leading-space rules (Strip, Metaspace) consistent.
class StreamingDetokenizer {
 public:
  // The tokenizer must outlive this (a server holds one detokenizer per stream, not a tokenizer each).
  explicit StreamingDetokenizer(const Tokenizer& tokenizer, bool skip_special_tokens = true);
  // Newly complete text, possibly empty.
  std::string push(int32_t id);
  // Whatever is held back (e.g. an incomplete character at the end of generation), then reset.
  std::string flush();

 private:
  const Tokenizer* tokenizer_;
  bool skip_special_tokens_;
  std::vector<int32_t> ids_;
  size_t prefix_offset_ = 0;  // start of the context window
  size_t read_offset_ = 0;    // ids before this have been emitted
};

}  // namespace shardlm
