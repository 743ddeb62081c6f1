// How the CUDA model runs one forward pass over a packed batch of rows, decided when the rows are
// staged: which kernels each op picks (GEMV or GEMM, split or tensor-core attention).
#pragma once

#include <optional>

namespace shardlm::cuda {

// A chunk that is one run of consecutive positions of one sequence (a prompt), which the
// tensor-core prefill attention handles.
struct ContiguousRun {
  int slot;
  int first_position;
};

struct StepShape {
  int n_rows = 0, n_logit_rows = 0, n_splits = 1;
  std::optional<ContiguousRun> run;
  bool gemv = false;  // decode-shaped: every linear layer is a GEMV with the norm or residual add folded in
};

}  // namespace shardlm::cuda
