// BPE merging with a min-heap of candidate pairs ordered by (rank, position), the same order the Rust
// crate uses, so ties between equal-rank merges resolve leftmost-first exactly as HF does. A word's
// symbols form a doubly linked list in a vector; stale heap entries are detected and skipped.
#include "tokenizer/bpe_model.h"

#include <mutex>
#include <queue>
#include <shared_mutex>

#include <fmt/format.h>

#include "core/error.h"
#include "tokenizer/json_fields.h"
#include "tokenizer/utf8.h"

namespace shardlm {

// Words are cached like HF does (10k entries, words under 256 bytes). Lookups take a shared lock and
// inserts only try for the exclusive one, so concurrent encodes never wait on the cache.
struct BpeModel::WordCache {
  static constexpr size_t kCapacity = 10000;
  static constexpr size_t kMaxWordBytes = 256;
  mutable std::shared_mutex mutex;
  std::unordered_map<std::string, std::vector<int32_t>, StringHash, std::equal_to<>> words;
};

namespace {

uint64_t pair_key(int32_t left, int32_t right) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
}

struct Symbol {
  int32_t id;
  int32_t prev;  // index of the previous live symbol, -1 at the start
  int32_t next;  // index of the next live symbol, -1 at the end
  bool merged_away;
};

struct MergeCandidate {
  uint32_t rank;
  int32_t position;  // index of the left symbol
  int32_t merged_id;
  // std::priority_queue is a max-heap; invert so the lowest rank, then leftmost position, comes first.
  bool operator<(const MergeCandidate& other) const {
    if (rank != other.rank) return rank > other.rank;
    return position > other.position;
  }
};

}  // namespace

BpeModel::BpeModel() : cache_(std::make_unique<WordCache>()) {}
BpeModel::BpeModel(BpeModel&&) noexcept = default;
BpeModel& BpeModel::operator=(BpeModel&&) noexcept = default;
BpeModel::~BpeModel() = default;

BpeModel BpeModel::from_json(const nlohmann::json& model, std::string_view source) {
  const std::string where = fmt::format("{}: model", source);
  const std::string type = model.contains("type") ? json_fields::type_of(model, where) : "BPE";
  if (type != "BPE") fail("{}: unsupported model type \"{}\" (only BPE is implemented)", source, type);
  if (model.contains("dropout") && !model["dropout"].is_null()) {
    const auto& dropout = model["dropout"];
    // Dropout is a training-time regularizer; 0 is the same as none.
    if (!dropout.is_number() || dropout.get<double>() != 0.0) fail("{}: dropout {} is not supported (only null)", where, dropout.dump());
  }

  BpeModel bpe;
  const auto& vocab = json_fields::required(model, "vocab", where);
  if (!vocab.is_object()) fail("{}: \"vocab\" must be an object of token -> id", where);
  bpe.vocab_.reserve(vocab.size());
  for (const auto& [token, id] : vocab.items()) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() > INT32_MAX) {
      fail("{}: vocab entry \"{}\" has invalid id {}", where, token, id.dump());
    }
    if (utf8::first_invalid_offset(token) != utf8::kInvalidOffset) fail("{}: vocab entry is not valid UTF-8", where);
    bpe.vocab_.emplace(token, id.get<int32_t>());
  }

  bpe.fuse_unk_ = json_fields::bool_or(model, "fuse_unk", false, where);
  bpe.byte_fallback_ = json_fields::bool_or(model, "byte_fallback", false, where);
  bpe.ignore_merges_ = json_fields::bool_or(model, "ignore_merges", false, where);
  bpe.continuing_subword_prefix_ = json_fields::optional_string(model, "continuing_subword_prefix", where).value_or("");
  bpe.end_of_word_suffix_ = json_fields::optional_string(model, "end_of_word_suffix", where).value_or("");
  if (const auto unk = json_fields::optional_string(model, "unk_token", where)) {
    const auto it = bpe.vocab_.find(*unk);
    if (it == bpe.vocab_.end()) fail("{}: unk_token \"{}\" is not in the vocab", where, *unk);
    bpe.unk_id_ = it->second;
  }

  const auto& merges = json_fields::required(model, "merges", where);
  if (!merges.is_array()) fail("{}: \"merges\" must be a list", where);
  bpe.merges_.reserve(merges.size());
  const auto lookup = [&](std::string_view token, size_t rank) {
    const auto it = bpe.vocab_.find(token);
    if (it == bpe.vocab_.end()) fail("{}: merge {} names \"{}\", which is not in the vocab", where, rank, token);
    return it->second;
  };
  std::string merged;
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const auto& merge = merges[rank];
    std::string_view left, right;
    if (merge.is_string()) {
      // Older files spell a merge "left right"; tokens never contain a space there (it is "Ġ" or "▁").
      const auto& text = merge.get_ref<const std::string&>();
      const size_t space = text.find(' ');
      if (space == std::string::npos) fail("{}: merge {} \"{}\" is not two tokens separated by a space", where, rank, text);
      left = std::string_view(text).substr(0, space);
      right = std::string_view(text).substr(space + 1);
    } else if (merge.is_array() && merge.size() == 2 && merge[0].is_string() && merge[1].is_string()) {
      left = merge[0].get_ref<const std::string&>();
      right = merge[1].get_ref<const std::string&>();
    } else {
      fail("{}: merge {} must be \"a b\" or [\"a\", \"b\"], found {}", where, rank, merge.dump());
    }
    if (!right.starts_with(bpe.continuing_subword_prefix_)) {
      fail("{}: merge {} right part \"{}\" lacks continuing_subword_prefix \"{}\"", where, rank, right, bpe.continuing_subword_prefix_);
    }
    merged.assign(left);
    merged.append(right.substr(bpe.continuing_subword_prefix_.size()));
    // A later duplicate of the same pair wins, as when HF collects merges into its hash map.
    const int32_t left_id = lookup(left, rank), right_id = lookup(right, rank), merged_id = lookup(merged, rank);
    bpe.merges_[pair_key(left_id, right_id)] = {static_cast<uint32_t>(rank), merged_id};
  }
  return bpe;
}

std::vector<int32_t> BpeModel::merge_word(std::string_view word) const {
  std::vector<Symbol> symbols;
  symbols.reserve(word.size());
  const auto add_symbol = [&](int32_t id) {
    const auto index = static_cast<int32_t>(symbols.size());
    if (index > 0) symbols.back().next = index;
    symbols.push_back({id, index - 1, -1, false});
  };
  // A run of unknown characters becomes one unk when fuse_unk is set; pending_unk holds it until the
  // next known character, mirroring HF's order of operations (byte-fallback bytes do not flush it).
  bool pending_unk = false;
  std::string piece;
  for (size_t pos = 0; pos < word.size();) {
    const size_t length = utf8::sequence_length(static_cast<unsigned char>(word[pos]));
    const bool is_first = pos == 0, is_last = pos + length >= word.size();
    piece.clear();
    if (!is_first) piece += continuing_subword_prefix_;
    piece.append(word.substr(pos, length));
    if (is_last) piece += end_of_word_suffix_;
    pos += length;

    if (const auto it = vocab_.find(piece); it != vocab_.end()) {
      if (pending_unk) add_symbol(*unk_id_), pending_unk = false;
      add_symbol(it->second);
      continue;
    }
    if (byte_fallback_) {
      std::vector<int32_t> byte_ids;
      for (unsigned char byte : piece) {
        const auto it = vocab_.find(fmt::format("<0x{:02X}>", byte));
        if (it == vocab_.end()) break;
        byte_ids.push_back(it->second);
      }
      if (byte_ids.size() == piece.size()) {
        for (int32_t id : byte_ids) add_symbol(id);
        continue;
      }
    }
    if (unk_id_) {
      if (pending_unk && !fuse_unk_) add_symbol(*unk_id_);
      pending_unk = true;
    }
    // Without an unk_token HF drops the character silently; so do we.
  }
  if (pending_unk) add_symbol(*unk_id_);

  std::priority_queue<MergeCandidate> queue;
  const auto push_candidate = [&](int32_t left) {
    const int32_t right = symbols[left].next;
    if (right < 0) return;
    const auto it = merges_.find(pair_key(symbols[left].id, symbols[right].id));
    if (it != merges_.end()) queue.push({it->second.rank, left, it->second.merged_id});
  };
  for (int32_t i = 0; i + 1 < static_cast<int32_t>(symbols.size()); ++i) push_candidate(i);
  while (!queue.empty()) {
    const MergeCandidate top = queue.top();
    queue.pop();
    Symbol& left = symbols[top.position];
    if (left.merged_away || left.next < 0) continue;
    // The pair at this position may have changed since the candidate was queued.
    const auto it = merges_.find(pair_key(left.id, symbols[left.next].id));
    if (it == merges_.end() || it->second.merged_id != top.merged_id) continue;
    Symbol& right = symbols[left.next];
    left.id = top.merged_id;
    right.merged_away = true;
    left.next = right.next;
    if (right.next >= 0) symbols[right.next].prev = top.position;
    if (left.prev >= 0) push_candidate(left.prev);
    push_candidate(top.position);
  }

  std::vector<int32_t> ids;
  for (const Symbol& symbol : symbols) {
    if (!symbol.merged_away) ids.push_back(symbol.id);
  }
  return ids;
}

void BpeModel::tokenize(std::string_view word, std::vector<int32_t>& ids) const {
  if (word.empty()) return;
  if (ignore_merges_) {
    if (const auto it = vocab_.find(word); it != vocab_.end()) {
      ids.push_back(it->second);
      return;
    }
  }
  {
    std::shared_lock lock(cache_->mutex);
    if (const auto it = cache_->words.find(word); it != cache_->words.end()) {
      ids.insert(ids.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<int32_t> word_ids = merge_word(word);
  ids.insert(ids.end(), word_ids.begin(), word_ids.end());
  if (word.size() < WordCache::kMaxWordBytes) {
    std::unique_lock lock(cache_->mutex, std::try_to_lock);
    if (lock.owns_lock() && cache_->words.size() < WordCache::kCapacity) cache_->words.emplace(word, std::move(word_ids));
  }
}

}  // namespace shardlm
