// The paged layout of a KV cache, as every backend holds it: each layer's keys (and values) are
// num_blocks blocks of block_size positions, and each sequence slot has a table of the blocks that
// hold its positions in order (position p is row p % block_size of block table[p / block_size]).
// Sequences then take memory as they grow rather than a whole max_seq_len each, and a block of a
// shared prompt prefix can sit in several tables at once (prefix caching). The Engine decides
// which blocks a sequence gets and sends each rank the changes to the tables before a step.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace shardlm {

struct KvCacheShape {
  int block_size = 16;       // a power of two, so a position splits into block and row by shifts
  int num_blocks = 0;        // blocks of every layer's keys and values
  int sequences = 1;         // slots, each with a table
  int64_t max_seq_len = 0;   // positions one sequence may hold

  int blocks_per_sequence() const { return int((max_seq_len + block_size - 1) / block_size); }
  int block_shift() const;
  // Every slot owning enough blocks for max_seq_len, as a cache without paging would.
  static KvCacheShape whole_sequences(int sequences, int64_t max_seq_len, int block_size = 16);
};

// Fails, naming the option, unless block_size is a power of two, there is at least one block and
// one slot, and max_seq_len >= 1.
void check_kv_cache_shape(const KvCacheShape& shape);

// Slot `slot`'s table from entry `first` on becomes `blocks`; entries past them are forgotten.
struct KvBlockUpdate {
  int slot = 0;
  int first = 0;
  std::vector<int32_t> blocks;
};

// Slot s owning blocks s * blocks_per_sequence onwards, every entry filled: the tables of
// KvCacheShape::whole_sequences, for callers that run sequences whole without an Engine.
std::vector<KvBlockUpdate> whole_sequence_updates(const KvCacheShape& shape);

// Every slot's table, on the host: (sequences, blocks_per_sequence) block ids and each slot's count.
class KvBlockTables {
 public:
  explicit KvBlockTables(const KvCacheShape& shape);

  // Fails naming the slot, entry or block when an update falls outside the shape.
  void apply(const KvBlockUpdate& update);

  const KvCacheShape& shape() const { return shape_; }
  const int32_t* table(int slot) const { return entries_.data() + int64_t(slot) * shape_.blocks_per_sequence(); }
  const int32_t* data() const { return entries_.data(); }
  int held(int slot) const { return held_[size_t(slot)]; }  // entries the slot's table has
  // Positions the slot's blocks cover.
  int64_t capacity(int slot) const { return int64_t(held(slot)) * shape_.block_size; }

 private:
  KvCacheShape shape_;
  std::vector<int32_t> entries_;
  std::vector<int> held_;
};

}  // namespace shardlm
