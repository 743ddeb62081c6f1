// The experts of a mixture-of-experts layer over a prompt's rows, on tensor cores: the pairs' rows
// gathered in expert order, one grouped GEMM for every chosen expert's gate/up projection
// (cuBLAS's cublasGemmGroupedBatchedEx: one call, each expert its own group of rows), SwiGLU, one
// grouped GEMM for the down projections, and the weighted sum per row. It syncs with the host for
// the groups' sizes, so decode steps keep the kernels of ops/cuda/expert_mlp.h, which fit a CUDA
// graph; their tiles read an expert's weights once per kExpertPairsPerPass of its pairs.
#pragma once

#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <vector>

#include "core/cuda/device_buffer.h"
#include "ops/cuda/expert_mlp.h"

namespace shardlm::cuda {

struct GroupedExpertsParams {
  // The rows, the experts, their grouping (offsets, pairs; active is not read) and the pairs'
  // activations (activated, n_rows · top_k by ff); expert_out is not used.
  ExpertMlpParams mlp;
  const float* weights = nullptr;    // (n_rows, top_k)
  const int32_t* experts = nullptr;  // (n_rows, top_k)
  __nv_bfloat16* rows = nullptr;     // scratch (n_rows · top_k, hidden): the pairs' rows, then their outputs
  __nv_bfloat16* gate_up = nullptr;  // scratch (n_rows · top_k, 2 ff)
  int32_t* positions = nullptr;      // scratch (n_rows · top_k)
  float* out = nullptr;              // (n_rows, hidden) f32, added to
};

class ExpertGroupedGemm {
 public:
  explicit ExpertGroupedGemm(int n_experts);
  ~ExpertGroupedGemm();
  ExpertGroupedGemm(const ExpertGroupedGemm&) = delete;
  ExpertGroupedGemm& operator=(const ExpertGroupedGemm&) = delete;

  // out += Σ_slot weight · expert(x). Waits for the stream, since the GEMMs' shapes are the
  // experts' row counts: never call it while the stream is captured into a CUDA graph.
  void run(const GroupedExpertsParams& params, cudaStream_t stream);

 private:
  // One grouped GEMM, a group per chosen expert: C_g (rows_g, n) = B_g (rows_g, k) · A_gᵀ, A_g (n, k).
  void grouped_gemm(int n, int k, int pointer_set, cudaStream_t stream);

  int n_experts_;
  cublasHandle_t handle_ = nullptr;
  PinnedBuffer host_offsets_;   // (n_experts + 1) int32, the grouping copied back
  PinnedBuffer host_pointers_;  // two sets (gate/up, down) of A, B and C pointers, n_experts each
  DeviceBuffer pointers_;       // their copy, which cuBLAS reads
  // The current call's groups: row counts, and the per-group arrays cuBLAS takes on the host.
  std::vector<int> group_rows_, m_, k_, lda_, ldb_, ldc_, group_size_;
  std::vector<float> alpha_, beta_;
  std::vector<cublasOperation_t> transpose_, no_transpose_;
};

}  // namespace shardlm::cuda
