#include "model/kv_block_table.h"

#include <bit>

#include "core/error.h"

namespace shardlm {

int KvCacheShape::block_shift() const { return std::countr_zero(unsigned(block_size)); }

KvCacheShape KvCacheShape::whole_sequences(int sequences, int64_t max_seq_len, int block_size) {
  KvCacheShape shape{block_size, 0, sequences, max_seq_len};
  shape.num_blocks = sequences * shape.blocks_per_sequence();
  return shape;
}

void check_kv_cache_shape(const KvCacheShape& shape) {
  if (shape.block_size < 1 || !std::has_single_bit(unsigned(shape.block_size)))
    fail("--block-size must be a power of two (8, 16, 32...), got {}", shape.block_size);
  if (shape.sequences < 1) fail("the KV cache needs at least one sequence slot, got {}", shape.sequences);
  if (shape.max_seq_len < 1) fail("--max-model-len must be >= 1, got {}", shape.max_seq_len);
  if (shape.num_blocks < 1)
    fail("the KV cache has no blocks (--kv-cache-memory too small for one block of {} tokens)", shape.block_size);
}

KvBlockTables::KvBlockTables(const KvCacheShape& shape)
    : shape_(shape),
      entries_(size_t(shape.sequences) * size_t(shape.blocks_per_sequence()), 0),
      held_(size_t(shape.sequences), 0) {
  check_kv_cache_shape(shape);
}

void KvBlockTables::apply(const KvBlockUpdate& update) {
  const int per_sequence = shape_.blocks_per_sequence();
  if (update.slot < 0 || update.slot >= shape_.sequences)
    fail("KV block table: slot {} is outside the {} slots", update.slot, shape_.sequences);
  if (update.first < 0 || update.first > held(update.slot) || update.first + int64_t(update.blocks.size()) > per_sequence)
    fail("KV block table: entries {}..{} of slot {} do not follow its {} (at most {})", update.first,
         update.first + int64_t(update.blocks.size()), update.slot, held(update.slot), per_sequence);
  int32_t* table = entries_.data() + int64_t(update.slot) * per_sequence;
  for (size_t i = 0; i < update.blocks.size(); ++i) {
    const int32_t block = update.blocks[i];
    if (block < 0 || block >= shape_.num_blocks)
      fail("KV block table: block {} is outside the {} blocks", block, shape_.num_blocks);
    table[size_t(update.first) + i] = block;
  }
  held_[size_t(update.slot)] = update.first + int(update.blocks.size());
}

std::vector<KvBlockUpdate> whole_sequence_updates(const KvCacheShape& shape) {
  const int per_sequence = shape.blocks_per_sequence();
  if (int64_t(shape.sequences) * per_sequence > shape.num_blocks)
    fail("KV cache: {} blocks cannot give {} sequences {} blocks each", shape.num_blocks, shape.sequences,
         per_sequence);
  std::vector<KvBlockUpdate> updates;
  for (int slot = 0; slot < shape.sequences; ++slot) {
    KvBlockUpdate whole{slot, 0, std::vector<int32_t>(size_t(per_sequence))};
    for (int i = 0; i < per_sequence; ++i) whole.blocks[size_t(i)] = slot * per_sequence + i;
    updates.push_back(std::move(whole));
  }
  return updates;
}

}  // namespace shardlm
