// KvBlockPool: handing out and reference-counting KV blocks, and the prefix cache over them
// (matching, verification against hash collisions, LRU eviction of released cached blocks).
#include <gtest/gtest.h>

#include <numeric>
#include <span>
#include <vector>

#include "engine/kv_block_pool.h"
#include "error_message.h"

namespace shardlm {
namespace {

std::vector<int32_t> counting(int32_t first, int count) {
  std::vector<int32_t> tokens(static_cast<size_t>(count));
  std::iota(tokens.begin(), tokens.end(), first);
  return tokens;
}

std::vector<int32_t> joined(std::vector<std::vector<int32_t>> parts) {
  std::vector<int32_t> all;
  for (const std::vector<int32_t>& part : parts) all.insert(all.end(), part.begin(), part.end());
  return all;
}

// What a sequence does while its prompt fills blocks: take a block for each full block of
// tokens and register it once full, each key chained on the previous block's.
std::vector<int32_t> fill_blocks(KvBlockPool& pool, std::span<const int32_t> prompt) {
  std::vector<int32_t> blocks;
  const size_t block_size = size_t(pool.block_size());
  uint64_t parent_key = KvBlockPool::kFirstBlockParentKey;
  for (size_t start = 0; start + block_size <= prompt.size(); start += block_size) {
    const std::span<const int32_t> tokens = prompt.subspan(start, block_size);
    const int32_t block = pool.allocate();
    const uint64_t key = KvBlockPool::block_key(parent_key, tokens);
    pool.register_full_block(block, key, parent_key, tokens);
    blocks.push_back(block);
    parent_key = key;
  }
  return blocks;
}

void release_all(KvBlockPool& pool, const std::vector<int32_t>& blocks) {
  for (int32_t block : blocks) pool.release(block);
}

TEST(KvBlockPool, AFreshPoolHandsOutBlocksInIdOrderThenNamesTheBlockCount) {
  KvBlockPool pool(4, 16, true);
  EXPECT_EQ(pool.free_blocks(), 4);
  for (int32_t expected = 0; expected < 4; ++expected) EXPECT_EQ(pool.allocate(), expected);
  EXPECT_EQ(pool.free_blocks(), 0);
  EXPECT_EQ(pool.used_blocks(), 4);
  EXPECT_ERROR_NAMES(pool.allocate(), "KV cache: all 4 blocks are in use");
}

TEST(KvBlockPool, ReleasedBlocksCanBeAllocatedAgain) {
  KvBlockPool pool(2, 16, false);
  const int32_t first = pool.allocate();
  pool.allocate();
  pool.release(first);
  EXPECT_EQ(pool.free_blocks(), 1);
  EXPECT_EQ(pool.used_blocks(), 1);
  EXPECT_EQ(pool.ref_count(first), 0);
  EXPECT_EQ(pool.allocate(), first);
  EXPECT_EQ(pool.ref_count(first), 1);
}

TEST(KvBlockPool, ABlockTwoSequencesShareNeedsTwoReleases) {
  KvBlockPool pool(4, 4, true);
  const std::vector<int32_t> prompt = counting(100, 4);
  const std::vector<int32_t> owner = fill_blocks(pool, prompt);
  const std::vector<int32_t> sharer = pool.match_prefix(prompt, 1);
  ASSERT_EQ(sharer, owner);
  EXPECT_EQ(pool.ref_count(owner[0]), 2);
  EXPECT_EQ(pool.free_blocks(), 3);

  pool.release(owner[0]);
  EXPECT_EQ(pool.ref_count(owner[0]), 1);
  EXPECT_EQ(pool.free_blocks(), 3);
  pool.release(owner[0]);
  EXPECT_EQ(pool.ref_count(owner[0]), 0);
  EXPECT_EQ(pool.free_blocks(), 4);
  EXPECT_EQ(pool.used_blocks(), 0);
}

TEST(KvBlockPool, BlockKeysDependOnEveryTokenTheirOrderAndTheParent) {
  const std::vector<int32_t> tokens = {1, 2, 3, 4};
  const uint64_t key = KvBlockPool::block_key(KvBlockPool::kFirstBlockParentKey, tokens);
  EXPECT_EQ(KvBlockPool::block_key(KvBlockPool::kFirstBlockParentKey, tokens), key);
  EXPECT_NE(KvBlockPool::block_key(KvBlockPool::kFirstBlockParentKey, std::vector<int32_t>{1, 2, 3, 5}), key);
  EXPECT_NE(KvBlockPool::block_key(KvBlockPool::kFirstBlockParentKey, std::vector<int32_t>{2, 1, 3, 4}), key);
  EXPECT_NE(KvBlockPool::block_key(key, tokens), key);
  // The first token's low bit alone changes about half the key's bits: the hash is well mixed.
  const uint64_t flipped = KvBlockPool::block_key(KvBlockPool::kFirstBlockParentKey, std::vector<int32_t>{0, 2, 3, 4});
  const int differing_bits = __builtin_popcountll(key ^ flipped);
  EXPECT_GT(differing_bits, 16);
  EXPECT_LT(differing_bits, 48);
}

TEST(KvBlockPool, APromptSharingTwoLeadingBlocksMatchesThoseTwo) {
  KvBlockPool pool(8, 4, true);
  const std::vector<int32_t> first_prompt = counting(0, 12);
  const std::vector<int32_t> cached = fill_blocks(pool, first_prompt);
  ASSERT_EQ(cached.size(), 3u);
  release_all(pool, cached);
  EXPECT_EQ(pool.free_blocks(), 8);  // cached but evictable

  const std::vector<int32_t> second_prompt = joined({counting(0, 8), counting(500, 4), {7}});
  const std::vector<int32_t> matched = pool.match_prefix(second_prompt, 3);
  EXPECT_EQ(matched, (std::vector<int32_t>{cached[0], cached[1]}));
  EXPECT_EQ(pool.ref_count(cached[0]), 1);
  EXPECT_EQ(pool.ref_count(cached[1]), 1);
  EXPECT_EQ(pool.ref_count(cached[2]), 0);
  EXPECT_EQ(pool.free_blocks(), 6);
  EXPECT_EQ(pool.used_blocks(), 2);
  EXPECT_EQ(pool.queried_tokens(), 13u);
  EXPECT_EQ(pool.hit_tokens(), 8u);
}

TEST(KvBlockPool, MaxBlocksBoundsTheMatch) {
  KvBlockPool pool(8, 4, true);
  const std::vector<int32_t> prompt = counting(0, 12);
  release_all(pool, fill_blocks(pool, prompt));
  EXPECT_TRUE(pool.match_prefix(prompt, 0).empty());
  const std::vector<int32_t> one = pool.match_prefix(prompt, 1);
  EXPECT_EQ(one.size(), 1u);
  EXPECT_EQ(pool.hit_tokens(), 4u);
  EXPECT_EQ(pool.queried_tokens(), 24u);
  // A partial last block is never matched, however many blocks are allowed.
  EXPECT_EQ(pool.match_prefix(std::span<const int32_t>(prompt).first(11), 8).size(), 2u);
}

TEST(KvBlockPool, MatchingStopsAtTheFirstBlockNotCached) {
  KvBlockPool pool(8, 4, true);
  release_all(pool, fill_blocks(pool, counting(0, 12)));
  // The second block differs; the third holds the same tokens as the cached third block, but its
  // prefix differs, so it must not match.
  const std::vector<int32_t> prompt = joined({counting(0, 4), counting(900, 4), counting(8, 4)});
  EXPECT_EQ(pool.match_prefix(prompt, 3).size(), 1u);
}

TEST(KvBlockPool, WithoutPrefixCachingNothingMatchesAndReleasedBlocksAreFree) {
  KvBlockPool pool(3, 4, false);
  const std::vector<int32_t> prompt = counting(0, 8);
  const std::vector<int32_t> blocks = fill_blocks(pool, prompt);
  release_all(pool, blocks);
  EXPECT_TRUE(pool.match_prefix(prompt, 2).empty());
  EXPECT_EQ(pool.hit_tokens(), 0u);
  EXPECT_EQ(pool.free_blocks(), 3);
  // Free, not cached: the released blocks come back from the free stack, last released first.
  EXPECT_EQ(pool.allocate(), blocks[1]);
}

TEST(KvBlockPool, AllocationEvictsTheLeastRecentlyReleasedCachedBlock) {
  KvBlockPool pool(3, 2, true);
  const std::vector<int32_t> prompt = counting(0, 6);
  const std::vector<int32_t> chain = fill_blocks(pool, prompt);  // a, b, c
  release_all(pool, chain);                                       // released a, then b, then c
  EXPECT_EQ(pool.allocate(), chain[0]);
  EXPECT_EQ(pool.free_blocks(), 2);
  // b and c are still cached, but their parent a is gone, so nothing of the prompt matches and the
  // two stay evictable.
  EXPECT_TRUE(pool.match_prefix(prompt, 3).empty());
  EXPECT_EQ(pool.free_blocks(), 2);
  EXPECT_EQ(pool.allocate(), chain[1]);
  EXPECT_EQ(pool.allocate(), chain[2]);
  EXPECT_ERROR_NAMES(pool.allocate(), "all 3 blocks are in use");
}

TEST(KvBlockPool, AMatchedBlockReleasedAgainMovesToTheEndOfTheLruOrder) {
  KvBlockPool pool(3, 2, true);
  const std::vector<int32_t> prompt = counting(0, 6);
  const std::vector<int32_t> chain = fill_blocks(pool, prompt);
  release_all(pool, chain);  // LRU order a, b, c
  const std::vector<int32_t> head = pool.match_prefix(prompt, 1);
  ASSERT_EQ(head, (std::vector<int32_t>{chain[0]}));
  EXPECT_EQ(pool.free_blocks(), 2);
  pool.release(head[0]);  // LRU order b, c, a
  EXPECT_EQ(pool.allocate(), chain[1]);
  EXPECT_EQ(pool.allocate(), chain[2]);
  // a survived both evictions and still matches.
  EXPECT_EQ(pool.match_prefix(prompt, 3), (std::vector<int32_t>{chain[0]}));
}

TEST(KvBlockPool, FreeBlocksAreTakenBeforeCachedOnesAreEvicted) {
  KvBlockPool pool(3, 2, true);
  const std::vector<int32_t> prompt = counting(0, 2);
  release_all(pool, fill_blocks(pool, prompt));
  pool.allocate();
  pool.allocate();
  EXPECT_EQ(pool.match_prefix(prompt, 1).size(), 1u);
}

TEST(KvBlockPool, AnEntryWhoseTokensDifferFromTheQueryIsNotMatched) {
  KvBlockPool pool(4, 4, true);
  const std::vector<int32_t> query = counting(0, 4);
  const std::vector<int32_t> other = counting(50, 4);
  const uint64_t query_key = KvBlockPool::block_key(KvBlockPool::kFirstBlockParentKey, query);
  // As a 64-bit collision would leave it: the query's key over another block's tokens.
  const int32_t forged = pool.allocate();
  pool.register_full_block(forged, query_key, KvBlockPool::kFirstBlockParentKey, other);
  pool.release(forged);
  EXPECT_TRUE(pool.match_prefix(query, 1).empty());
  EXPECT_EQ(pool.ref_count(forged), 0);
  EXPECT_EQ(pool.hit_tokens(), 0u);
}

TEST(KvBlockPool, AnEntryWhoseParentDiffersFromTheQueryIsNotMatched) {
  KvBlockPool pool(4, 4, true);
  const std::vector<int32_t> query = counting(0, 4);
  const uint64_t query_key = KvBlockPool::block_key(KvBlockPool::kFirstBlockParentKey, query);
  const int32_t forged = pool.allocate();
  pool.register_full_block(forged, query_key, KvBlockPool::kFirstBlockParentKey + 1, query);
  pool.release(forged);
  EXPECT_TRUE(pool.match_prefix(query, 1).empty());
}

TEST(KvBlockPool, ASecondBlockWithTheSameKeyStaysUncachedAndTheFirstIsKept) {
  KvBlockPool pool(3, 4, true);
  const std::vector<int32_t> prompt = counting(0, 4);
  const int32_t first = fill_blocks(pool, prompt)[0];
  const int32_t duplicate = fill_blocks(pool, prompt)[0];
  pool.release(first);
  pool.release(duplicate);
  // The duplicate went to the free stack, so it is handed out before anything is evicted.
  EXPECT_EQ(pool.allocate(), duplicate);
  EXPECT_EQ(pool.match_prefix(prompt, 1), (std::vector<int32_t>{first}));
}

TEST(KvBlockPool, ReleasingABlockNobodyReferencesFails) {
  KvBlockPool pool(2, 4, true);
  EXPECT_ERROR_NAMES(pool.release(0), "block 0");
  const int32_t block = pool.allocate();
  pool.release(block);
  EXPECT_ERROR_NAMES(pool.release(block), "KV cache", "released while no sequence references it");
  EXPECT_ERROR_NAMES(pool.release(2), "block 2", "0..1");
  EXPECT_ERROR_NAMES(pool.release(-1), "block -1");
}

TEST(KvBlockPool, RegisteringAnUnreferencedOrPartialBlockFails) {
  KvBlockPool pool(2, 4, true);
  const std::vector<int32_t> tokens = counting(0, 4);
  const uint64_t key = KvBlockPool::block_key(KvBlockPool::kFirstBlockParentKey, tokens);
  EXPECT_ERROR_NAMES(pool.register_full_block(0, key, KvBlockPool::kFirstBlockParentKey, tokens), "block 0",
                     "no sequence references it");
  const int32_t block = pool.allocate();
  EXPECT_ERROR_NAMES(pool.register_full_block(block, key, KvBlockPool::kFirstBlockParentKey,
                                              std::span<const int32_t>(tokens).first(3)),
                     "3 tokens", "holds 4");
  pool.register_full_block(block, key, KvBlockPool::kFirstBlockParentKey, tokens);
  pool.register_full_block(block, key, KvBlockPool::kFirstBlockParentKey, tokens);  // again: no change
  EXPECT_ERROR_NAMES(pool.register_full_block(block, key + 1, KvBlockPool::kFirstBlockParentKey, tokens),
                     "already cached under another key");
}

TEST(KvBlockPool, TheConstructorNamesABadArgument) {
  EXPECT_ERROR_NAMES(KvBlockPool(0, 16, true), "num_blocks", "0");
  EXPECT_ERROR_NAMES(KvBlockPool(-3, 16, false), "num_blocks", "-3");
  EXPECT_ERROR_NAMES(KvBlockPool(4, 0, true), "block_size", "0");
  const KvBlockPool pool(4, 16, true);
  EXPECT_EQ(pool.num_blocks(), 4);
  EXPECT_EQ(pool.block_size(), 16);
  EXPECT_TRUE(pool.prefix_caching());
}

}  // namespace
}  // namespace shardlm
