// KV cache storage, allocated once for the whole generation so decode never reallocates.
#include "model/kv_cache.h"

namespace shardlm {

KvCache::KvCache(std::span<const int64_t> kv_dims, int64_t capacity)
    : kv_dims_(kv_dims.begin(), kv_dims.end()), capacity_(capacity), keys_(kv_dims.size()), values_(kv_dims.size()) {
  for (size_t il = 0; il < kv_dims.size(); ++il) {
    keys_[il].resize(size_t(kv_dims[il] * capacity));
    values_[il].resize(size_t(kv_dims[il] * capacity));
  }
}

}  // namespace shardlm
