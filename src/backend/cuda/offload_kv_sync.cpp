// Copies go one (layer, block, keys or values) run of rows at a time, through a pinned bf16
// buffer, widened to or narrowed from the CPU cache's f32 on the host.
#include "backend/cuda/offload_kv_sync.h"

#include <algorithm>
#include <map>

#include "core/dtype.h"
#include "core/error.h"

namespace shardlm::cuda {

OffloadKvSync::OffloadKvSync(std::vector<DeviceLayerCache> layers, int64_t kv_dim, const KvCacheShape& shape,
                             int device, cudaStream_t stream)
    : layers_(std::move(layers)),
      kv_dim_(kv_dim),
      block_size_(shape.block_size),
      device_(device),
      stream_(stream),
      scratch_rows_(std::max<int64_t>(shape.max_seq_len, shape.block_size)),
      scratch_(size_t(scratch_rows_) * size_t(kv_dim) * sizeof(__nv_bfloat16)) {
  valid_[0].assign(size_t(shape.num_blocks), 0);
  valid_[1].assign(size_t(shape.num_blocks), 0);
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

KvSide other_side(KvSide side) { return side == KvSide::GPU ? KvSide::CPU : KvSide::GPU; }

}  // namespace

void OffloadKvSync::prepare(KvSide side, std::span<const TokenRow> rows, KvCache& cpu_cache) {
  const KvSide other = other_side(side);
  std::vector<BlockRun> runs;
  for (const auto& [slot, span] : spans_of(rows)) {
    const int32_t* table = cpu_cache.tables().table(slot);
    for (int64_t start = 0; start < span.first; start += block_size_) {
      const int32_t block = table[start / block_size_];
      const int need = int(std::min<int64_t>(block_size_, span.first - start));
      int& have = valid_[int(side)][size_t(block)];
      if (have >= need) continue;
      if (valid_[int(other)][size_t(block)] < need)
        fail("offloaded KV cache: sequence {} has positions up to {} on neither side, but a row at {} needs them", slot,
             start + std::max(have, valid_[int(other)][size_t(block)]), span.first);
      runs.push_back({block, have, need});
      have = need;  // a block shared by two of the sequences is copied once
    }
  }
  copy(side, runs, cpu_cache);
}

void OffloadKvSync::written(KvSide side, std::span<const TokenRow> rows, const KvCache& cpu_cache) {
  const KvSide other = other_side(side);
  for (const auto& [slot, span] : spans_of(rows)) {
    const int32_t* table = cpu_cache.tables().table(slot);
    for (int64_t position = span.first; position < span.second;) {
      const int32_t block = table[position / block_size_];
      const int first_row = int(position % block_size_);
      const int end_row = int(std::min<int64_t>(block_size_, first_row + (span.second - position)));
      valid_[int(side)][size_t(block)] = end_row;
      int& stale_from = valid_[int(other)][size_t(block)];
      stale_from = std::min(stale_from, first_row);
      position += end_row - first_row;
    }
  }
}

void OffloadKvSync::copy(KvSide to, std::span<const BlockRun> runs, KvCache& cpu_cache) {
  if (runs.empty()) return;
  CUDA_CHECK(cudaSetDevice(device_));
  const size_t width = size_t(kv_dim_);
  uint16_t* scratch = scratch_.get<uint16_t>();
  for (size_t begin = 0; begin < runs.size();) {
    // A batch of runs that fits the scratch (a run is at most one block, which always fits).
    size_t end = begin;
    int64_t batch_rows = 0;
    for (; end < runs.size() && batch_rows + (runs[end].end - runs[end].first) <= scratch_rows_; ++end)
      batch_rows += runs[end].end - runs[end].first;
    for (const DeviceLayerCache& layer : layers_) {
      for (const bool keys : {true, false}) {
        auto device_at = [&](const BlockRun& run) {
          return (keys ? layer.keys : layer.values) + (size_t(run.block) * size_t(block_size_) + size_t(run.first)) * width;
        };
        auto host_at = [&](const BlockRun& run) {
          return keys ? cpu_cache.block_keys(layer.layer, run.block, run.first)
                      : cpu_cache.block_values(layer.layer, run.block, run.first);
        };
        uint16_t* bits = scratch;
        if (to == KvSide::CPU) {
          for (size_t r = begin; r < end; bits += size_t(runs[r].end - runs[r].first) * width, ++r)
            CUDA_CHECK(cudaMemcpyAsync(bits, device_at(runs[r]), size_t(runs[r].end - runs[r].first) * width * 2,
                                       cudaMemcpyDeviceToHost, stream_));
          CUDA_CHECK(cudaStreamSynchronize(stream_));
          bits = scratch;
          for (size_t r = begin; r < end; ++r) {
            const size_t count = size_t(runs[r].end - runs[r].first) * width;
            float* host = host_at(runs[r]);
            for (size_t i = 0; i < count; ++i) host[i] = bf16_to_f32(bits[i]);
            bits += count;
          }
        } else {
          for (size_t r = begin; r < end; ++r) {
            const size_t count = size_t(runs[r].end - runs[r].first) * width;
            const float* host = host_at(runs[r]);
            for (size_t i = 0; i < count; ++i) bits[i] = f32_to_bf16(host[i]);
            CUDA_CHECK(cudaMemcpyAsync(device_at(runs[r]), bits, count * 2, cudaMemcpyHostToDevice, stream_));
            bits += count;
          }
          CUDA_CHECK(cudaStreamSynchronize(stream_));
        }
      }
    }
    begin = end;
  }
}

}  // namespace shardlm::cuda
