// Copies go one (layer, sequence, keys or values) run of consecutive positions at a time, through
// a pinned bf16 buffer, widened to or narrowed from the CPU cache's f32 on the host.
#include "backend/cuda/offload_kv_sync.h"

#include <algorithm>
#include <map>

#include "core/dtype.h"
#include "core/error.h"

namespace shardlm::cuda {

OffloadKvSync::OffloadKvSync(std::vector<DeviceLayerCache> layers, int64_t kv_dim, int64_t max_seq_len, int slots,
                             int device, cudaStream_t stream)
    : layers_(std::move(layers)),
      kv_dim_(kv_dim),
      max_seq_len_(max_seq_len),
      device_(device),
      stream_(stream),
      scratch_(size_t(max_seq_len * kv_dim) * sizeof(__nv_bfloat16)) {
  valid_[0].assign(size_t(slots), 0);
  valid_[1].assign(size_t(slots), 0);
}

namespace {

// The first and one-past-last position of each sequence among the rows.
std::map<int, std::pair<int64_t, int64_t>> spans_of(std::span<const TokenRow> rows) {
  std::map<int, std::pair<int64_t, int64_t>> spans;
  for (const TokenRow& row : rows) {
    auto [it, inserted] = spans.try_emplace(row.sequence, row.position, row.position + 1);
    it->second.first = std::min(it->second.first, row.position);
    it->second.second = std::max(it->second.second, row.position + 1);
  }
  return spans;
}

}  // namespace

void OffloadKvSync::prepare(KvSide side, std::span<const TokenRow> rows, std::span<KvCache* const> cpu_caches) {
  const KvSide other = side == KvSide::GPU ? KvSide::CPU : KvSide::GPU;
  for (const auto& [slot, span] : spans_of(rows)) {
    int64_t& have = valid_[int(side)][size_t(slot)];
    const int64_t need = span.first;
    if (have >= need) continue;
    if (valid_[int(other)][size_t(slot)] < need)
      fail("offloaded KV cache: sequence {} has positions up to {} on neither side, but a row at {} needs them", slot,
           std::max(have, valid_[int(other)][size_t(slot)]), need);
    copy(side, slot, have, need, *cpu_caches[size_t(slot)]);
    have = need;
  }
}

void OffloadKvSync::written(KvSide side, std::span<const TokenRow> rows) {
  const KvSide other = side == KvSide::GPU ? KvSide::CPU : KvSide::GPU;
  for (const auto& [slot, span] : spans_of(rows)) {
    valid_[int(side)][size_t(slot)] = span.second;
    int64_t& stale_from = valid_[int(other)][size_t(slot)];
    stale_from = std::min(stale_from, span.first);
  }
}

void OffloadKvSync::copy(KvSide to, int slot, int64_t first, int64_t end, KvCache& cpu_cache) {
  CUDA_CHECK(cudaSetDevice(device_));
  const size_t count = size_t((end - first) * kv_dim_);
  const size_t offset = size_t((int64_t(slot) * max_seq_len_ + first) * kv_dim_);
  uint16_t* bits = scratch_.get<uint16_t>();
  for (const DeviceLayerCache& layer : layers_) {
    for (const bool keys : {true, false}) {
      __nv_bfloat16* device = (keys ? layer.keys : layer.values) + offset;
      float* host = keys ? cpu_cache.keys(layer.layer, first) : cpu_cache.values(layer.layer, first);
      if (to == KvSide::CPU) {
        CUDA_CHECK(cudaMemcpyAsync(bits, device, count * 2, cudaMemcpyDeviceToHost, stream_));
        CUDA_CHECK(cudaStreamSynchronize(stream_));
        for (size_t i = 0; i < count; ++i) host[i] = bf16_to_f32(bits[i]);
      } else {
        for (size_t i = 0; i < count; ++i) bits[i] = f32_to_bf16(host[i]);
        CUDA_CHECK(cudaMemcpyAsync(device, bits, count * 2, cudaMemcpyHostToDevice, stream_));
        CUDA_CHECK(cudaStreamSynchronize(stream_));
      }
    }
  }
}

}  // namespace shardlm::cuda
