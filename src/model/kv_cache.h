// The key/value cache of one sequence on the CPU: for each layer, keys and values of every
// position so far, (capacity, kv_dim) each, in f32. Layers may differ in width (a tensor-parallel
// rank holds each layer's KV heads as that layer's plan entry says). A device map's CPU side holds
// only the layers the CPU may compute; the others have no storage.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace shardlm {

class KvCache {
 public:
  // kv_dims[il]: the width of layer il's keys and values; a layer of width 0 holds nothing.
  KvCache(std::span<const int64_t> kv_dims, int64_t capacity);

  float* keys(int il, int64_t position) { return keys_[size_t(il)].data() + position * kv_dims_[size_t(il)]; }
  float* values(int il, int64_t position) { return values_[size_t(il)].data() + position * kv_dims_[size_t(il)]; }
  const float* keys(int il) const { return keys_[size_t(il)].data(); }
  const float* values(int il) const { return values_[size_t(il)].data(); }
  int64_t capacity() const { return capacity_; }
  int64_t kv_dim(int il) const { return kv_dims_[size_t(il)]; }

 private:
  std::vector<int64_t> kv_dims_;
  int64_t capacity_;
  std::vector<std::vector<float>> keys_;    // [layer] (capacity, kv_dim)
  std::vector<std::vector<float>> values_;  // [layer] (capacity, kv_dim)
};

}  // namespace shardlm
