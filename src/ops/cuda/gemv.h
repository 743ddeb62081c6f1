// Decode-sized linear layers (a few activation rows): y (m, n) = x (m, k) · Wᵀ, W (n, k) bf16.
// Memory-bound, so the kernel exists to stream W at full bandwidth (cuBLASLt's choices for m = 1
// leave a large share of it unused), and it absorbs the small steps around a decode GEMM so they
// cost no launch of their own: RMSNorm of its input, SwiGLU of a gate/up pair, the residual add.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "ops/cuda/qkv_rope.h"

namespace shardlm::cuda {

// Up to this many rows the GEMV streams W at full bandwidth; beyond, its CUDA-core FMAs bound it
// (an H100 step of the Llama-3-8B shape took 6.0 ms at 1 row, 9.7 at 4 and 19.5 at 8 when it served
// up to 8), so batched decode goes to cuBLASLt's tensor cores instead.
constexpr int kGemvMaxRows = 2;

// The block stages its activation rows in shared memory as bf16; this bound fits every GPU from
// sm_80 on (164 KB per block on an A100, 227 KB on an H100) and every supported model's widest
// input (Llama-3-70B's 28672-wide MLP at two rows).
constexpr int64_t kGemvMaxStagedBytes = 160 * 1024;

// Whether m activation rows of k elements fit the staging area.
constexpr bool gemv_stages(int64_t m, int64_t k) { return m * k * 2 <= kGemvMaxStagedBytes; }

enum class GemvOutput {
  BF16,         // y (m, n) bf16
  F32,          // y (m, n) f32
  SWIGLU_BF16,  // W is (2n, k) = [gate; up]; y (m, n) = silu(x·gateᵀ) · (x·upᵀ), bf16
  ADD_TO_F32,   // y (m, n) f32 += x·Wᵀ (the residual stream)
  // W is the fused [q; k; v] projection and n its width: the bias is added, q and k are rotated and
  // q goes to rope.q_out, k and v into the KV cache, as launch_qkv_rope would do from a BF16
  // output (its q/k norms are not supported: they need whole heads). y is unused.
  QKV_ROPE,
};

struct GemvParams {
  // x (m, k): bf16 rows, or, when norm_weight is set, the f32 residual rows, which the kernel
  // RMS-normalises with norm_weight (k) and eps on the fly (the norm is a per-row scalar).
  const void* x = nullptr;
  const __nv_bfloat16* norm_weight = nullptr;
  float eps = 0.0f;
  int64_t m = 0;
  const __nv_bfloat16* w = nullptr;
  int64_t n = 0, k = 0;
  void* y = nullptr;
  GemvOutput output = GemvOutput::BF16;
  QkvRopeParams rope{};  // QKV_ROPE only; its qkv, n_rows and norm fields are unused
  // With norm_weight: the normalised bf16 rows (m, k) are also stored here, for a consumer after this
  // GEMV that reads them whole (a sparse layer's experts beside its router).
  __nv_bfloat16* normed_out = nullptr;
  // For one row where the previous kernel leaves memory idle (attention, a small GEMV): a block per
  // multiprocessor copies its columns' whole rows of W into shared memory before it waits for that
  // kernel, so W streams while it runs. Ignored where gemv_holds_weights_in_shared says no.
  bool weights_in_shared = false;
};

// Whether the GEMV handles this shape (m <= kGemvMaxRows, k a multiple of 8 that can be staged,
// 16-byte aligned operands).
bool gemv_supports(int64_t m, int64_t k, const void* x, const void* w);
// Whether launch_gemv holds W in shared memory for these parameters on the current device: they ask
// for it, have one row and one of the forms that kernel has, and W fits.
bool gemv_holds_weights_in_shared(const GemvParams& params);
void launch_gemv(const GemvParams& params, cudaStream_t stream);

}  // namespace shardlm::cuda
