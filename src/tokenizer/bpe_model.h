// The BPE model: turns one pre-token into ids by starting from its characters and applying merges in
// rank order, as the Rust tokenizers crate does (byte_fallback to <0xNN> tokens, unk_token with
// fuse_unk, ignore_merges, continuing_subword_prefix / end_of_word_suffix). Results are cached per word.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

namespace shardlm {

// Transparent hashing so lookups by string_view do not allocate.
struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view text) const { return std::hash<std::string_view>{}(text); }
};
using TokenIdMap = std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>>;

class BpeModel {
 public:
  // Reads tokenizer.json's "model" object (type BPE). Merges may be "a b" strings or [a, b] pairs.
  static BpeModel from_json(const nlohmann::json& model, std::string_view source);

  BpeModel(BpeModel&&) noexcept;
  BpeModel& operator=(BpeModel&&) noexcept;
  ~BpeModel();

  // Appends the ids of one pre-token (non-empty, valid UTF-8).
  void tokenize(std::string_view word, std::vector<int32_t>& ids) const;

  const TokenIdMap& vocab() const { return vocab_; }

 private:
  struct MergeTarget {
    uint32_t rank;
    int32_t merged_id;
  };
  struct WordCache;

  BpeModel();
  std::vector<int32_t> merge_word(std::string_view word) const;

  TokenIdMap vocab_;
  // Key: (left id << 32) | right id.
  std::unordered_map<uint64_t, MergeTarget> merges_;
  std::optional<int32_t> unk_id_;
  bool fuse_unk_ = false;
  bool byte_fallback_ = false;
  bool ignore_merges_ = false;
  std::string continuing_subword_prefix_;
  std::string end_of_word_suffix_;
  std::unique_ptr<WordCache> cache_;
};

}  // namespace shardlm
