// How the CUDA kernels find a sequence's keys and values in the paged KV cache: each layer's cache
// is (blocks, block_size, kv_dim), and a sequence's slot has a table of its blocks in position
// order (model/kv_block_table.h is the host's side of the same layout).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace shardlm::cuda {

struct PagedKv {
  const int32_t* tables = nullptr;  // (slots, blocks_per_sequence) block ids, on the device
  int blocks_per_sequence = 0;
  int block_shift = 4;              // block_size = 1 << block_shift

  // The cache row (counted in kv_dim-wide rows) of the slot's position.
  __device__ __forceinline__ int64_t row(int slot, int position) const {
    const int32_t block = tables[int64_t(slot) * blocks_per_sequence + (position >> block_shift)];
    return (int64_t(block) << block_shift) | (position & ((1 << block_shift) - 1));
  }
};

}  // namespace shardlm::cuda
