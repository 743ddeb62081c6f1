// How the CUDA model runs one forward pass over a packed batch of rows, decided when the rows are
// staged: which kernels each op picks (GEMV or GEMM, split or tensor-core attention).
#pragma once

namespace shardlm::cuda {

struct StepShape {
  int n_rows = 0, n_logit_rows = 0, n_splits = 1;
  // Runs of several consecutive positions of a sequence (prompt chunks) take the tensor-core
  // prefill attention, as n_prefill_tiles tiles among the staged inputs, its keys in n_key_splits;
  // the other rows (decode rows) take the split kernel: n_single_rows of them, listed among the
  // staged inputs (every row when there are no tiles).
  int n_prefill_tiles = 0, n_key_splits = 1, n_single_rows = 0;
  bool gemv = false;  // decode-shaped: every linear layer is a GEMV with the norm or residual add folded in
  // Not decode-shaped (so never captured into a CUDA graph): the experts run as grouped GEMMs,
  // which wait for the routing to reach the host (ops/cuda/expert_grouped_gemm.h).
  bool grouped_experts = false;
};

}  // namespace shardlm::cuda
