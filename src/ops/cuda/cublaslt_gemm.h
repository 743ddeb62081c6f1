// Linear layers: y (m, n) = x (m, k) · Wᵀ with W stored (n, k) row-major in bf16 (HF layout), f32
// accumulation, bf16 or f32 output. Decode calls of one or two rows (kGemvMaxRows) go to our GEMV
// kernel; the rest to cuBLASLt. Its algorithm is timed once per (n, k, output) and band of m (up to a
// power of two), and kept for every m of that band that cuBLASLt accepts it for: a server's steps
// have a new m almost every time, and timing eight candidates for each cost as much as the step.
#pragma once

#include <cublasLt.h>
#include <cuda_bf16.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <tuple>
#include <type_traits>

#include "core/cuda/cuda_check.h"
#include "core/cuda/device_buffer.h"

namespace shardlm::cuda {

enum class GemmOutput { BF16, F32 };

class CublasLtGemm {
 public:
  explicit CublasLtGemm(size_t workspace_bytes = size_t(64) << 20);
  ~CublasLtGemm();
  CublasLtGemm(const CublasLtGemm&) = delete;
  CublasLtGemm& operator=(const CublasLtGemm&) = delete;

  void linear(const __nv_bfloat16* x, int64_t m, const __nv_bfloat16* w, int64_t n, int64_t k, void* y,
              GemmOutput output, cudaStream_t stream);
  // y (m, ff_dim) = silu(x·W_gateᵀ) · (x·W_upᵀ) for w_gate_up (2 ff_dim, k) = [gate; up]: one GEMV
  // for up to kGemvMaxRows rows; otherwise a GEMM into gate_up_scratch (m, 2 ff_dim), then SwiGLU.
  void gate_up_swiglu(const __nv_bfloat16* x, int64_t m, const __nv_bfloat16* w_gate_up, int64_t ff_dim, int64_t k,
                      __nv_bfloat16* gate_up_scratch, __nv_bfloat16* y, cudaStream_t stream);

  // How many times candidates were timed (for tests).
  int timings() const { return timings_; }

 private:
  using ShapeKey = std::tuple<int64_t, int64_t, int64_t, int>;  // m (or its band), n, k, output
  // cuBLASLt's descriptors, owned, so that a failed check while a plan is made does not leak them.
  struct DescriptorDeleter {
    void operator()(cublasLtMatmulDesc_t operation) const { cublasLtMatmulDescDestroy(operation); }
    void operator()(cublasLtMatrixLayout_t layout) const { cublasLtMatrixLayoutDestroy(layout); }
    void operator()(cublasLtMatmulPreference_t preference) const { cublasLtMatmulPreferenceDestroy(preference); }
  };
  template <typename Handle>
  using Owned = std::unique_ptr<std::remove_pointer_t<Handle>, DescriptorDeleter>;
  // create(&handle, args...), checked, the handle owned from then on.
  template <typename Handle, typename... Params, typename... Args>
  static Owned<Handle> create_owned(cublasStatus_t (*create)(Handle*, Params...), Args... args) {
    Handle handle = nullptr;
    CUBLAS_CHECK(create(&handle, Params(args)...));
    return Owned<Handle>(handle);
  }
  struct Plan {
    Owned<cublasLtMatmulDesc_t> operation;
    Owned<cublasLtMatrixLayout_t> w_layout, x_layout, y_layout;
    cublasLtMatmulAlgo_t algorithm{};
  };
  // The cached plan for this shape, made once: with its band's timed algorithm where cuBLASLt
  // accepts it for this m; otherwise the heuristic's first choice, or (for m of kAutotuneMinRows
  // and more, outside a capture) the fastest of its candidates, which becomes the band's.
  const Plan& plan_for(const __nv_bfloat16* x, int64_t m, const __nv_bfloat16* w, int64_t n, int64_t k, void* y,
                       GemmOutput output, cudaStream_t stream);
  // The fastest of the heuristic's candidates, timed on these operands; none if none would run.
  std::optional<cublasLtMatmulAlgo_t> fastest_candidate(const Plan& plan, const __nv_bfloat16* x,
                                                        const __nv_bfloat16* w, void* y,
                                                        const cublasLtMatmulHeuristicResult_t* candidates,
                                                        int n_candidates, cudaStream_t stream);

  cublasLtHandle_t handle_ = nullptr;
  DeviceBuffer workspace_;
  std::map<ShapeKey, Plan> plans_;
  std::map<ShapeKey, cublasLtMatmulAlgo_t> timed_;
  int timings_ = 0;
};

}  // namespace shardlm::cuda
