// Under --offload-exec auto the offloaded layers run on the GPU in some steps and on the CPU in
// others, so their KV cache exists twice: bf16 on the offload GPU, f32 in the CPU cache, both
// paged alike (the same block tables). Positions are written in order within a block, so each copy
// of a block is valid up to a row count per side; before a step runs on one side, that side is
// brought up to the step's first position from the other, block by block (after a streamed
// prefill, the CPU side receives the prompt's keys and values once). Counting per block rather
// than per sequence lets blocks that prefix caching shares between sequences be synced once.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <span>
#include <vector>

#include "core/cuda/device_buffer.h"
#include "model/kv_cache.h"
#include "model/token_row.h"

namespace shardlm::cuda {

enum class KvSide { GPU, CPU };

// Where the GPU copy of one offloaded layer's cache is: (blocks, block_size, kv_dim) bf16 each.
struct DeviceLayerCache {
  int layer = 0;
  __nv_bfloat16* keys = nullptr;
  __nv_bfloat16* values = nullptr;
};

class OffloadKvSync {
 public:
  OffloadKvSync(std::vector<DeviceLayerCache> layers, int64_t kv_dim, const KvCacheShape& shape, int device,
                cudaStream_t stream);

  // Makes `side` hold every position before the rows' first one, for each sequence in rows; the
  // CPU cache's tables say which blocks those are (the GPU's are the same).
  void prepare(KvSide side, std::span<const TokenRow> rows, KvCache& cpu_cache);
  // The rows' keys and values were written on `side`.
  void written(KvSide side, std::span<const TokenRow> rows, const KvCache& cpu_cache);

 private:
  // Rows [first, end) of a block.
  struct BlockRun {
    int32_t block;
    int first, end;
  };
  // The runs, to `to` from the other side, as many at a time as the scratch holds, so that each
  // batch waits for the GPU once per layer.
  void copy(KvSide to, std::span<const BlockRun> runs, KvCache& cpu_cache);

  std::vector<DeviceLayerCache> layers_;
  int64_t kv_dim_;
  int block_size_;
  int device_;
  cudaStream_t stream_;
  std::vector<int> valid_[2];  // [side][block]: rows [0, valid) hold the current values
  int64_t scratch_rows_;
  PinnedBuffer scratch_;       // scratch_rows_ rows of one layer's keys or values, bf16
};

}  // namespace shardlm::cuda
