#include "engine/kv_block_pool.h"

#include <algorithm>

#include "core/error.h"

namespace shardlm {

namespace {

// splitmix64's finaliser: a bijection whose every output bit depends on every input bit, so
// tokens that differ in one bit give unrelated keys (std::hash on integers is the identity).
uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

constexpr uint64_t kGoldenGamma = 0x9e3779b97f4a7c15ull;

}  // namespace

KvBlockPool::KvBlockPool(int num_blocks, int block_size, bool prefix_caching)
    : num_blocks_(num_blocks), block_size_(block_size), prefix_caching_(prefix_caching) {
  if (num_blocks < 1) fail("KV cache: num_blocks must be >= 1, got {}", num_blocks);
  if (block_size < 1) fail("KV cache: block_size must be >= 1, got {}", block_size);
  ref_counts_.assign(size_t(num_blocks), 0);
  // Descending, so the stack hands out 0, 1, 2, ...: a fresh pool lays sequences out in id order.
  free_list_.reserve(size_t(num_blocks));
  for (int32_t block = num_blocks - 1; block >= 0; --block) free_list_.push_back(block);
  lru_prev_.assign(size_t(num_blocks) + 1, num_blocks);
  lru_next_.assign(size_t(num_blocks) + 1, num_blocks);
  if (prefix_caching) {
    index_.reserve(size_t(num_blocks));
    indexed_.assign(size_t(num_blocks), 0);
    keys_.assign(size_t(num_blocks), 0);
    parent_keys_.assign(size_t(num_blocks), 0);
    tokens_.assign(size_t(num_blocks) * size_t(block_size), 0);
  }
}

void KvBlockPool::check_block(int32_t block, const char* action) const {
  if (block < 0 || block >= num_blocks_)
    fail("KV cache: cannot {} block {}: the pool has blocks 0..{}", action, block, num_blocks_ - 1);
}

int KvBlockPool::ref_count(int32_t block) const {
  check_block(block, "read the reference count of");
  return ref_counts_[size_t(block)];
}

int32_t KvBlockPool::allocate() {
  int32_t block;
  if (!free_list_.empty()) {
    block = free_list_.back();
    free_list_.pop_back();
  } else if (evictable_ > 0) {
    block = lru_next_[size_t(num_blocks_)];  // the head: released longest ago
    lru_unlink(block);
    unindex(block);
  } else {
    fail("KV cache: all {} blocks are in use", num_blocks_);
  }
  ref_counts_[size_t(block)] = 1;
  return block;
}

void KvBlockPool::release(int32_t block) {
  check_block(block, "release");
  int32_t& refs = ref_counts_[size_t(block)];
  if (refs == 0) fail("KV cache: block {} released while no sequence references it", block);
  if (--refs > 0) return;
  if (prefix_caching_ && indexed_[size_t(block)])
    lru_push_back(block);
  else
    free_list_.push_back(block);
}

uint64_t KvBlockPool::block_key(uint64_t parent_key, std::span<const int32_t> tokens) {
  uint64_t key = mix64(parent_key + kGoldenGamma);
  // Tokens go in as unsigned 32-bit values so that a negative id cannot smear its sign bits
  // over the state; the golden gamma keeps a zero state from mixing to zero.
  for (int32_t token : tokens) key = mix64((key ^ uint64_t(uint32_t(token))) + kGoldenGamma);
  return mix64(key ^ uint64_t(tokens.size()));
}

std::span<const int32_t> KvBlockPool::stored_tokens(int32_t block) const {
  return std::span<const int32_t>(tokens_).subspan(size_t(block) * size_t(block_size_), size_t(block_size_));
}

std::vector<int32_t> KvBlockPool::cached_prefix(std::span<const int32_t> tokens, int max_blocks) const {
  std::vector<int32_t> matched;
  if (!prefix_caching_ || max_blocks <= 0) return matched;
  const size_t candidates = std::min(tokens.size() / size_t(block_size_), size_t(max_blocks));
  uint64_t parent_key = kFirstBlockParentKey;
  for (size_t i = 0; i < candidates; ++i) {
    const std::span<const int32_t> query = tokens.subspan(i * size_t(block_size_), size_t(block_size_));
    const uint64_t key = block_key(parent_key, query);
    const auto entry = index_.find(key);
    if (entry == index_.end()) break;
    const int32_t block = entry->second;
    // Stored tokens and parent must both agree: with the parent checked at every step, the whole
    // prefix up to here is verified, not just this block's hash.
    if (parent_keys_[size_t(block)] != parent_key || !std::ranges::equal(stored_tokens(block), query)) break;
    matched.push_back(block);
    parent_key = key;
  }
  return matched;
}

std::vector<int32_t> KvBlockPool::match_prefix(std::span<const int32_t> tokens, int max_blocks) {
  queried_tokens_ += tokens.size();
  std::vector<int32_t> matched = cached_prefix(tokens, max_blocks);
  for (int32_t block : matched) {
    if (ref_counts_[size_t(block)] == 0) lru_unlink(block);
    ++ref_counts_[size_t(block)];
  }
  hit_tokens_ += uint64_t(matched.size()) * uint64_t(block_size_);
  return matched;
}

void KvBlockPool::register_full_block(int32_t block, uint64_t key, uint64_t parent_key,
                                      std::span<const int32_t> tokens) {
  if (!prefix_caching_) return;
  check_block(block, "register");
  if (ref_counts_[size_t(block)] == 0)
    fail("KV cache: block {} registered as full while no sequence references it", block);
  if (tokens.size() != size_t(block_size_))
    fail("KV cache: block {} registered with {} tokens, but a full block holds {}", block, tokens.size(),
         block_size_);
  if (indexed_[size_t(block)]) {
    // A full block's content never changes; a second key would mean the caller reused it wrongly.
    if (keys_[size_t(block)] == key) return;
    fail("KV cache: block {} is already cached under another key", block);
  }
  // The first block with a key keeps it: sequences may already share it, and the duplicate's KV
  // is the same, so it simply goes free when its sequence lets go.
  if (!index_.emplace(key, block).second) return;
  indexed_[size_t(block)] = 1;
  keys_[size_t(block)] = key;
  parent_keys_[size_t(block)] = parent_key;
  std::ranges::copy(tokens, tokens_.begin() + ptrdiff_t(size_t(block) * size_t(block_size_)));
}

void KvBlockPool::unindex(int32_t block) {
  index_.erase(keys_[size_t(block)]);
  indexed_[size_t(block)] = 0;
}

void KvBlockPool::lru_push_back(int32_t block) {
  const int32_t sentinel = num_blocks_;
  const int32_t tail = lru_prev_[size_t(sentinel)];
  lru_prev_[size_t(block)] = tail;
  lru_next_[size_t(block)] = sentinel;
  lru_next_[size_t(tail)] = block;
  lru_prev_[size_t(sentinel)] = block;
  ++evictable_;
}

void KvBlockPool::lru_unlink(int32_t block) {
  const int32_t prev = lru_prev_[size_t(block)];
  const int32_t next = lru_next_[size_t(block)];
  lru_next_[size_t(prev)] = next;
  lru_prev_[size_t(next)] = prev;
  --evictable_;
}

}  // namespace shardlm
