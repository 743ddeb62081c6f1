// KV cache storage, allocated once for every block so decode never reallocates.
#include "model/kv_cache.h"

namespace shardlm {

KvCache::KvCache(std::span<const int64_t> kv_dims, const KvCacheShape& shape)
    : kv_dims_(kv_dims.begin(), kv_dims.end()), tables_(shape), keys_(kv_dims.size()), values_(kv_dims.size()) {
  const size_t positions = size_t(shape.num_blocks) * size_t(shape.block_size);
  for (size_t il = 0; il < kv_dims.size(); ++il) {
    keys_[il].resize(size_t(kv_dims[il]) * positions);
    values_[il].resize(size_t(kv_dims[il]) * positions);
  }
}

}  // namespace shardlm
