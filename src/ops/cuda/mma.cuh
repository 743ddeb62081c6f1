// Warp-level tensor-core primitives (PTX, sm_80 and later): ldmatrix from shared memory and the bf16
// m16n8k16 MMA with f32 accumulators. Fragment layouts, with g = lane / 4 and t = lane % 4: an A
// fragment (16 x 16, row-major) is 4 registers of bf16 pairs, (g, 2t), (g + 8, 2t), (g, 2t + 8),
// (g + 8, 2t + 8); a B fragment (16 x 8, k by n) is 2 registers, (k = 2t, n = g) and (k = 2t + 8,
// n = g); the accumulator (16 x 8) is 4 floats, (g, 2t), (g, 2t + 1), (g + 8, 2t), (g + 8, 2t + 1).
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

namespace shardlm::cuda {

// Four 8 x 8 bf16 matrices; lane i gives the address of row i % 8 of matrix i / 8, and each lane
// receives (row g, columns 2t and 2t + 1) of every matrix; with .trans, (rows 2t and 2t + 1, column g).
__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], uint32_t address) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(address));
}

__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], uint32_t address) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(address));
}

// d += a · b for a 16 x 16 bf16 A fragment, a 16 x 8 B fragment and a 16 x 8 f32 accumulator.
__device__ __forceinline__ void mma_bf16_16816(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Two floats as a register of bf16s, the first in the low half (the lower column of a fragment).
__device__ __forceinline__ uint32_t pack_bf16(float low, float high) {
  const __nv_bfloat162 pair = __floats2bfloat162_rn(low, high);
  return *reinterpret_cast<const uint32_t*>(&pair);
}

}  // namespace shardlm::cuda
