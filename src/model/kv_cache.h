// The key/value cache of one sequence on the CPU: for each layer, keys and values of every
// position so far, (capacity, kv_dim) each, in f32. A device map's CPU side holds only the layers
// the CPU may compute; the others have no storage.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace shardlm {

class KvCache {
 public:
  KvCache(int n_layers, int64_t kv_dim, int64_t capacity);                                // every layer
  KvCache(int n_layers, int64_t kv_dim, int64_t capacity, std::span<const int> held_layers);  // only these

  float* keys(int il, int64_t position) { return keys_[size_t(il)].data() + position * kv_dim_; }
  float* values(int il, int64_t position) { return values_[size_t(il)].data() + position * kv_dim_; }
  const float* keys(int il) const { return keys_[size_t(il)].data(); }
  const float* values(int il) const { return values_[size_t(il)].data(); }
  int64_t capacity() const { return capacity_; }
  int64_t kv_dim() const { return kv_dim_; }

 private:
  int64_t kv_dim_;
  int64_t capacity_;
  std::vector<std::vector<float>> keys_;    // [layer] (capacity, kv_dim)
  std::vector<std::vector<float>> values_;  // [layer] (capacity, kv_dim)
};

}  // namespace shardlm
