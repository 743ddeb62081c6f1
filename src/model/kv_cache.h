// The key/value cache on the CPU: for each layer, keys and values in f32, paged as
// model/kv_block_table.h lays out, with every slot's block table. Layers may differ in width (a
// tensor-parallel rank holds each layer's KV heads as that layer's plan entry says). A device map's
// CPU side holds only the layers the CPU may compute; the others have width 0 and no storage.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "model/kv_block_table.h"
#include "ops/cpu/attention.h"

namespace shardlm {

class KvCache {
 public:
  // kv_dims[il]: the width of layer il's keys and values; a layer of width 0 holds nothing.
  KvCache(std::span<const int64_t> kv_dims, const KvCacheShape& shape);

  // Where slot `slot`'s position `position` of layer il lives (its table must cover it).
  float* keys(int il, int slot, int64_t position) { return keys_[size_t(il)].data() + row(il, slot, position); }
  float* values(int il, int slot, int64_t position) { return values_[size_t(il)].data() + row(il, slot, position); }
  // Row `row` of block `block` of layer il, whichever sequences hold it.
  float* block_keys(int il, int32_t block, int row) { return keys_[size_t(il)].data() + block_row(il, block, row); }
  float* block_values(int il, int32_t block, int row) { return values_[size_t(il)].data() + block_row(il, block, row); }
  // The slot's positions of layer il, as attention reads them.
  cpu::PagedRows key_rows(int il, int slot) const { return rows_of(keys_, il, slot); }
  cpu::PagedRows value_rows(int il, int slot) const { return rows_of(values_, il, slot); }

  void apply(const KvBlockUpdate& update) { tables_.apply(update); }
  void assign_whole_sequences() {
    for (const KvBlockUpdate& update : whole_sequence_updates(tables_.shape())) tables_.apply(update);
  }
  const KvBlockTables& tables() const { return tables_; }
  int64_t capacity(int slot) const { return tables_.capacity(slot); }
  int64_t kv_dim(int il) const { return kv_dims_[size_t(il)]; }

 private:
  int64_t block_row(int il, int64_t block, int64_t row) const {
    return (block * tables_.shape().block_size + row) * kv_dims_[size_t(il)];
  }
  int64_t row(int il, int slot, int64_t position) const {
    const int64_t block_size = tables_.shape().block_size;
    return block_row(il, tables_.table(slot)[position / block_size], position % block_size);
  }
  cpu::PagedRows rows_of(const std::vector<std::vector<float>>& store, int il, int slot) const {
    return {store[size_t(il)].data(), tables_.table(slot), tables_.shape().block_size, kv_dims_[size_t(il)]};
  }

  std::vector<int64_t> kv_dims_;
  KvBlockTables tables_;
  std::vector<std::vector<float>> keys_;    // [layer] (num_blocks, block_size, kv_dim)
  std::vector<std::vector<float>> values_;  // [layer] (num_blocks, block_size, kv_dim)
};

}  // namespace shardlm
