// cuBLASLt is column-major, so the row-major product y = x·Wᵀ is computed as the column-major
// yᵀ (n, m) = W (n, k as a transposed k×n column-major matrix) · xᵀ (k, m): A = W with op T,
// B = x with op N, C = y, all leading dimensions the row lengths.
#include "ops/cuda/cublaslt_gemm.h"

#include <bit>

#include "core/cuda/cuda_event.h"
#include "ops/cuda/gemv.h"
#include "ops/cuda/swiglu.h"
#include "core/error.h"

namespace shardlm::cuda {

// Every band of products cuBLASLt gets (the GEMV takes the smaller ones) is worth timing once.
constexpr int64_t kAutotuneMinRows = kGemvMaxRows + 1;

CublasLtGemm::CublasLtGemm(size_t workspace_bytes) : workspace_(workspace_bytes) {
  CUBLAS_CHECK(cublasLtCreate(&handle_));
}

CublasLtGemm::~CublasLtGemm() {
  plans_.clear();  // the plans' descriptors go before the handle
  if (handle_) cublasLtDestroy(handle_);
}

namespace {

// The band of m whose products share one timed algorithm.
int64_t row_band(int64_t m) { return int64_t(std::bit_ceil(uint64_t(m))); }

}  // namespace

const CublasLtGemm::Plan& CublasLtGemm::plan_for(const __nv_bfloat16* x, int64_t m, const __nv_bfloat16* w, int64_t n,
                                                 int64_t k, void* y, GemmOutput output, cudaStream_t stream) {
  const ShapeKey key{m, n, k, int(output)};
  if (auto found = plans_.find(key); found != plans_.end()) return found->second;

  Plan plan;
  plan.operation = create_owned(cublasLtMatmulDescCreate, CUBLAS_COMPUTE_32F, CUDA_R_32F);
  cublasLtMatmulDesc_t operation = plan.operation.get();
  const cublasOperation_t transpose = CUBLAS_OP_T, no_transpose = CUBLAS_OP_N;
  CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(operation, CUBLASLT_MATMUL_DESC_TRANSA, &transpose, sizeof(transpose)));
  CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(operation, CUBLASLT_MATMUL_DESC_TRANSB, &no_transpose, sizeof(no_transpose)));
  // Column-major bf16 (or f32 output) matrices of rows x cols, leading dimension rows.
  const auto layout = [](cudaDataType_t type, int64_t rows, int64_t cols) {
    return create_owned(cublasLtMatrixLayoutCreate, type, uint64_t(rows), uint64_t(cols), rows);
  };
  plan.w_layout = layout(CUDA_R_16BF, k, n);
  plan.x_layout = layout(CUDA_R_16BF, k, m);
  plan.y_layout = layout(output == GemmOutput::BF16 ? CUDA_R_16BF : CUDA_R_32F, n, m);

  // The band's algorithm, where one was timed and cuBLASLt accepts it for this m.
  const ShapeKey band{row_band(m), n, k, int(output)};
  if (auto timed = timed_.find(band); timed != timed_.end()) {
    cublasLtMatmulHeuristicResult_t check{};
    if (cublasLtMatmulAlgoCheck(handle_, operation, plan.w_layout.get(), plan.x_layout.get(), plan.y_layout.get(),
                                plan.y_layout.get(), &timed->second, &check) == CUBLAS_STATUS_SUCCESS &&
        check.workspaceSize <= workspace_.bytes()) {
      plan.algorithm = timed->second;
      return plans_.emplace(key, std::move(plan)).first->second;
    }
  }

  const Owned<cublasLtMatmulPreference_t> preference = create_owned(cublasLtMatmulPreferenceCreate);
  const size_t workspace_bytes = workspace_.bytes();
  CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(preference.get(), CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                    &workspace_bytes, sizeof(workspace_bytes)));
  constexpr int kCandidates = 8;
  cublasLtMatmulHeuristicResult_t results[kCandidates] = {};
  int n_results = 0;
  const cublasStatus_t status =
      cublasLtMatmulAlgoGetHeuristic(handle_, operation, plan.w_layout.get(), plan.x_layout.get(), plan.y_layout.get(),
                                     plan.y_layout.get(), preference.get(), kCandidates, results, &n_results);
  if (status != CUBLAS_STATUS_SUCCESS || n_results == 0)
    fail("cuBLASLt has no bf16 GEMM algorithm for m={} n={} k={}", m, n, k);
  plan.algorithm = results[0].algo;

  // The heuristic's first choice is often not the fastest for prefill-sized products: time the
  // candidates once on the real operands (not possible while a CUDA graph is being captured).
  cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
  CUDA_CHECK(cudaStreamIsCapturing(stream, &capture));
  if (m >= kAutotuneMinRows && n_results > 1 && capture == cudaStreamCaptureStatusNone) {
    if (const auto fastest = fastest_candidate(plan, x, w, y, results, n_results, stream)) {
      plan.algorithm = *fastest;
      timed_.insert_or_assign(band, *fastest);
    }
  }
  return plans_.emplace(key, std::move(plan)).first->second;
}

std::optional<cublasLtMatmulAlgo_t> CublasLtGemm::fastest_candidate(const Plan& plan, const __nv_bfloat16* x,
                                                                    const __nv_bfloat16* w, void* y,
                                                                    const cublasLtMatmulHeuristicResult_t* candidates,
                                                                    int n_candidates, cudaStream_t stream) {
  ++timings_;
  const CudaEvent start, stop;
  const float alpha = 1.0f, beta = 0.0f;
  std::optional<cublasLtMatmulAlgo_t> fastest;
  float best_ms = 0;
  for (int i = 0; i < n_candidates; ++i) {
    auto run = [&] {
      return cublasLtMatmul(handle_, plan.operation.get(), &alpha, w, plan.w_layout.get(), x, plan.x_layout.get(), &beta,
                            y, plan.y_layout.get(), y, plan.y_layout.get(), &candidates[i].algo, workspace_.get(),
                            workspace_.bytes(), stream);
    };
    if (run() != CUBLAS_STATUS_SUCCESS) continue;  // a candidate may refuse these operands
    CUDA_CHECK(cudaEventRecord(start.get(), stream));
    for (int repeat = 0; repeat < 3; ++repeat) CUBLAS_CHECK(run());
    CUDA_CHECK(cudaEventRecord(stop.get(), stream));
    CUDA_CHECK(cudaEventSynchronize(stop.get()));
    float ms = 0;
    CUDA_CHECK(cudaEventElapsedTime(&ms, start.get(), stop.get()));
    if (!fastest || ms < best_ms) {
      best_ms = ms;
      fastest = candidates[i].algo;
    }
  }
  return fastest;
}

void CublasLtGemm::linear(const __nv_bfloat16* x, int64_t m, const __nv_bfloat16* w, int64_t n, int64_t k, void* y,
                          GemmOutput output, cudaStream_t stream) {
  if (m == 0) return;  // cuBLASLt refuses empty products
  if (gemv_supports(m, k, x, w)) {
    launch_gemv({x, nullptr, 0.0f, m, w, n, k, y, output == GemmOutput::F32 ? GemvOutput::F32 : GemvOutput::BF16}, stream);
    return;
  }
  const Plan& plan = plan_for(x, m, w, n, k, y, output, stream);
  const float alpha = 1.0f, beta = 0.0f;
  CUBLAS_CHECK(cublasLtMatmul(handle_, plan.operation.get(), &alpha, w, plan.w_layout.get(), x, plan.x_layout.get(),
                              &beta, y, plan.y_layout.get(), y, plan.y_layout.get(), &plan.algorithm, workspace_.get(),
                              workspace_.bytes(), stream));
}

void CublasLtGemm::gate_up_swiglu(const __nv_bfloat16* x, int64_t m, const __nv_bfloat16* w_gate_up, int64_t ff_dim,
                                  int64_t k, __nv_bfloat16* gate_up_scratch, __nv_bfloat16* y, cudaStream_t stream) {
  if (gemv_supports(m, k, x, w_gate_up)) {
    launch_gemv({x, nullptr, 0.0f, m, w_gate_up, ff_dim, k, y, GemvOutput::SWIGLU_BF16}, stream);
    return;
  }
  linear(x, m, w_gate_up, 2 * ff_dim, k, gate_up_scratch, GemmOutput::BF16, stream);
  launch_silu_mul(gate_up_scratch, int(m), int(ff_dim), y, stream);
}

}  // namespace shardlm::cuda
