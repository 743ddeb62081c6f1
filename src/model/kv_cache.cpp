// KV cache storage, allocated once for the whole generation so decode never reallocates.
#include "model/kv_cache.h"

namespace shardlm {

KvCache::KvCache(int n_layers, int64_t kv_dim, int64_t capacity)
    : kv_dim_(kv_dim), capacity_(capacity),
      keys_(size_t(n_layers), std::vector<float>(size_t(kv_dim * capacity))),
      values_(size_t(n_layers), std::vector<float>(size_t(kv_dim * capacity))) {}

KvCache::KvCache(int n_layers, int64_t kv_dim, int64_t capacity, std::span<const int> held_layers)
    : kv_dim_(kv_dim), capacity_(capacity), keys_(size_t(n_layers)), values_(size_t(n_layers)) {
  for (int il : held_layers) {
    keys_[size_t(il)].resize(size_t(kv_dim * capacity));
    values_[size_t(il)].resize(size_t(kv_dim * capacity));
  }
}

}  // namespace shardlm
