// The bookkeeping of a paged KV cache, as vLLM's BlockPool: the KV memory is num_blocks blocks of
// block_size token positions, and each sequence holds a list of block ids. The pool hands out ids,
// counts references (prefix caching lets several sequences share a block of a common prompt
// prefix), and indexes full blocks by their content so a later prompt with the same prefix reuses
// their KV instead of computing it again. A cached block that no sequence references stays indexed
// until the pool needs room; then the least recently released one is evicted first, since the
// prefixes used most recently are the likeliest to come back (a system prompt, a chat's history).
// It holds no KV data itself, so it needs no device and every backend can share it.
#pragma once

#include <cstdint>
#include <span>
#include <unordered_map>
#include <vector>

namespace shardlm {

class KvBlockPool {
 public:
  // The parent key of a sequence's first block, so that every block's key hashes its whole prefix.
  static constexpr uint64_t kFirstBlockParentKey = 0x6a09e667f3bcc908ull;

  // num_blocks >= 1 and block_size >= 1, else fails naming the argument. Without prefix caching
  // nothing is ever indexed or matched, and released blocks are free at once.
  KvBlockPool(int num_blocks, int block_size, bool prefix_caching);

  int num_blocks() const { return num_blocks_; }
  int block_size() const { return block_size_; }
  bool prefix_caching() const { return prefix_caching_; }
  // Blocks allocate() could hand out now: free ones, and cached ones no sequence references.
  int free_blocks() const { return int(free_list_.size()) + evictable_; }
  // Blocks at least one sequence references.
  int used_blocks() const { return num_blocks_ - free_blocks(); }
  // References the block has now (0 for a free or evictable one); fails outside the pool.
  int ref_count(int32_t block) const;

  // A block with one reference. Free blocks go first (0, 1, 2, ... in a fresh pool); when none is
  // left, the least recently released cached block is evicted, leaving the index. Fails
  // "KV cache: all N blocks are in use" when every block is referenced.
  int32_t allocate();
  // Drops one reference. At zero an indexed block waits in the LRU order (most recently released
  // last) and an unindexed one is free. Releasing a block nobody references is a bug and fails.
  // A finished sequence should release its blocks last first (as vLLM does), so that eviction takes
  // the tail of a cached prefix before its head, whose loss would strand every block after it.
  void release(int32_t block);

  // A full block's content key: a 64-bit hash of its parent's key (kFirstBlockParentKey for a
  // sequence's first block) and its tokens, so equal keys mean equal whole prefixes.
  static uint64_t block_key(uint64_t parent_key, std::span<const int32_t> tokens);

  // The cached blocks holding tokens' leading full blocks, in order, stopping at the first block
  // not cached and after max_blocks (a caller that must compute at least one token to get logits
  // passes fewer than all of them). Each returned block gains a reference. A match is verified
  // against the entry's stored tokens and parent key, so a 64-bit collision cannot hand out
  // another prefix's KV. Adds tokens.size() to queried_tokens() and the matched positions to
  // hit_tokens().
  std::vector<int32_t> match_prefix(std::span<const int32_t> tokens, int max_blocks);
  // The blocks match_prefix would return, without taking them or counting the lookup.
  std::vector<int32_t> cached_prefix(std::span<const int32_t> tokens, int max_blocks) const;
  // A referenced block has just been filled with block_size `tokens` whose key is `key`
  // (block_key(parent_key, tokens)): index it so later prompts can match it. When another block
  // already holds that key the first one stays, and this block stays unindexed (freed on its
  // last release). Nothing happens without prefix caching.
  void register_full_block(int32_t block, uint64_t key, uint64_t parent_key, std::span<const int32_t> tokens);

  // For /metrics: prompt tokens looked up by match_prefix, and those found cached.
  uint64_t queried_tokens() const { return queried_tokens_; }
  uint64_t hit_tokens() const { return hit_tokens_; }

 private:
  void check_block(int32_t block, const char* action) const;
  std::span<const int32_t> stored_tokens(int32_t block) const;
  void unindex(int32_t block);
  // The LRU order of evictable blocks is a doubly linked list threaded through lru_prev_/lru_next_,
  // with index num_blocks_ as the sentinel: no allocation on release, O(1) unlinking on a match.
  void lru_push_back(int32_t block);
  void lru_unlink(int32_t block);

  int num_blocks_;
  int block_size_;
  bool prefix_caching_;
  std::vector<int32_t> ref_counts_;
  std::vector<int32_t> free_list_;  // a stack: the back is handed out next
  std::vector<int32_t> lru_prev_, lru_next_;
  int evictable_ = 0;  // blocks in the LRU list
  // Prefix caching: key -> block, and for each block whether it is indexed, its key, its parent's
  // key and a copy of its tokens (num_blocks x block_size) to verify matches with.
  std::unordered_map<uint64_t, int32_t> index_;
  std::vector<uint8_t> indexed_;
  std::vector<uint64_t> keys_, parent_keys_;
  std::vector<int32_t> tokens_;
  uint64_t queried_tokens_ = 0, hit_tokens_ = 0;
};

}  // namespace shardlm
