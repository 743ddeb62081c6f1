#include "ops/cuda/expert_grouped_gemm.h"

#include "core/cuda/cuda_check.h"
#include "ops/cuda/swiglu.h"

namespace shardlm::cuda {

namespace {
// The pointer arrays hold two sets (gate/up, down) of three arrays (A, B, C).
constexpr int kPointerArrays = 6;
}  // namespace

ExpertGroupedGemm::ExpertGroupedGemm(int n_experts)
    : n_experts_(n_experts),
      host_offsets_(size_t(n_experts + 1) * sizeof(int32_t)),
      host_pointers_(size_t(kPointerArrays) * size_t(n_experts) * sizeof(void*)),
      pointers_(size_t(kPointerArrays) * size_t(n_experts) * sizeof(void*)) {
  CUBLAS_CHECK(cublasCreate(&handle_));
}

ExpertGroupedGemm::~ExpertGroupedGemm() {
  if (handle_) cublasDestroy(handle_);
}

void ExpertGroupedGemm::run(const GroupedExpertsParams& params, cudaStream_t stream) {
  const ExpertMlpParams& mlp = params.mlp;
  if (mlp.n_experts != n_experts_) throw_unsupported("grouped experts of a layer with another expert count", mlp.n_experts);
  check_expert_operands(mlp);
  if (mlp.n_rows == 0 || mlp.n_local_experts == 0) return;
  CUDA_CHECK(cudaMemcpyAsync(host_offsets_.get(), mlp.offsets, host_offsets_.bytes(), cudaMemcpyDeviceToHost, stream));
  CUDA_CHECK(cudaStreamSynchronize(stream));  // also: the previous call's pointer copy has left host_pointers_
  const int32_t* offsets = host_offsets_.get<int32_t>();
  const int n_grouped = offsets[mlp.n_experts];
  if (n_grouped == 0) return;
  launch_gather_expert_rows({mlp.x, mlp.pairs, n_grouped, mlp.top_k, mlp.hidden, params.rows, params.positions}, stream);

  const int64_t hidden = mlp.hidden, ff = mlp.ff;
  const void** pointers = host_pointers_.get<const void*>();
  const size_t n = size_t(n_experts_);
  group_rows_.clear();
  for (int local = 0; local < mlp.n_local_experts; ++local) {
    const int expert = mlp.first_expert + local;
    const int64_t begin = offsets[expert];
    const int rows = offsets[expert + 1] - offsets[expert];
    if (rows == 0) continue;
    const size_t g = group_rows_.size();
    // gate/up: the expert's (2 ff, hidden) weights over its rows, into their gate/up values
    pointers[g] = mlp.gate_up + local * 2 * ff * hidden;
    pointers[n + g] = params.rows + begin * hidden;
    pointers[2 * n + g] = params.gate_up + begin * 2 * ff;
    // down: the (hidden, ff) weights over the activations, into the rows' place (no longer read)
    pointers[3 * n + g] = mlp.down + local * hidden * ff;
    pointers[4 * n + g] = mlp.activated + begin * ff;
    pointers[5 * n + g] = params.rows + begin * hidden;
    group_rows_.push_back(rows);
  }
  CUDA_CHECK(cudaMemcpyAsync(pointers_.get(), pointers, pointers_.bytes(), cudaMemcpyHostToDevice, stream));
  grouped_gemm(int(2 * ff), int(hidden), 0, stream);
  launch_silu_mul(params.gate_up, n_grouped, int(ff), mlp.activated, stream);
  grouped_gemm(int(hidden), int(ff), 1, stream);
  launch_grouped_expert_combine({params.rows, params.positions, params.weights, params.experts, mlp.n_rows, mlp.top_k,
                                 mlp.hidden, mlp.first_expert, mlp.first_expert + mlp.n_local_experts, params.out},
                                stream);
}

void ExpertGroupedGemm::grouped_gemm(int n, int k, int pointer_set, cudaStream_t stream) {
  // cuBLAS is column-major: C_g (n × rows) = A_gᵀ (n × k) · B_g (k × rows), with A_g the row-major
  // (n, k) weights (a k × n column-major matrix) and B_g, C_g row-major rows.
  const size_t groups = group_rows_.size();
  m_.assign(groups, n);
  k_.assign(groups, k);
  lda_.assign(groups, k);
  ldb_.assign(groups, k);
  ldc_.assign(groups, n);
  group_size_.assign(groups, 1);
  alpha_.assign(groups, 1.0f);
  beta_.assign(groups, 0.0f);
  transpose_.assign(groups, CUBLAS_OP_T);
  no_transpose_.assign(groups, CUBLAS_OP_N);
  void** set = pointers_.get<void*>() + size_t(pointer_set) * 3 * size_t(n_experts_);
  CUBLAS_CHECK(cublasSetStream(handle_, stream));
  CUBLAS_CHECK(cublasGemmGroupedBatchedEx(handle_, transpose_.data(), no_transpose_.data(), m_.data(), group_rows_.data(),
                                          k_.data(), alpha_.data(), set, CUDA_R_16BF, lda_.data(), set + n_experts_,
                                          CUDA_R_16BF, ldb_.data(), beta_.data(), set + 2 * n_experts_, CUDA_R_16BF,
                                          ldc_.data(), int(groups), group_size_.data(), CUBLAS_COMPUTE_32F));
}

}  // namespace shardlm::cuda
