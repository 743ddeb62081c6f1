// Under --offload-exec auto the offloaded layers run on the GPU in some steps and on the CPU in
// others, so their KV cache exists twice: bf16 on the offload GPU, f32 in the CPU caches. A
// sequence's positions are written in order, so each copy is valid up to a length per sequence;
// before a step runs on one side, that side is brought up to the step's first position from the
// other (after a streamed prefill, the CPU side receives the prompt's keys and values once).
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <span>
#include <vector>

#include "core/cuda/device_buffer.h"
#include "model/llama_model.h"
#include "model/kv_cache.h"

namespace shardlm::cuda {

enum class KvSide { GPU, CPU };

// Where the GPU copy of one offloaded layer's cache is: (slots, max_seq_len, kv_dim) bf16 each.
struct DeviceLayerCache {
  int layer = 0;
  __nv_bfloat16* keys = nullptr;
  __nv_bfloat16* values = nullptr;
};

class OffloadKvSync {
 public:
  OffloadKvSync(std::vector<DeviceLayerCache> layers, int64_t kv_dim, int64_t max_seq_len, int slots, int device,
                cudaStream_t stream);

  // Makes `side` hold every position before the rows' first one, for each sequence in rows.
  void prepare(KvSide side, std::span<const TokenRow> rows, std::span<KvCache* const> cpu_caches);
  // The rows' keys and values were written on `side`.
  void written(KvSide side, std::span<const TokenRow> rows);

 private:
  void copy(KvSide to, int slot, int64_t first, int64_t end, KvCache& cpu_cache);

  std::vector<DeviceLayerCache> layers_;
  int64_t kv_dim_, max_seq_len_;
  int device_;
  cudaStream_t stream_;
  std::vector<int64_t> valid_[2];  // [side][slot]: positions [0, valid) hold the current values
  PinnedBuffer scratch_;           // one layer's keys or values of one sequence, bf16
};

}  // namespace shardlm::cuda
