// The penalised tokens of a pass's sampled rows (ops/logit_penalties.h), copied to the sampling GPU,
// where the sampling kernel changes their logits and keeps the raw ones for log-probabilities. A
// row's settings point into these buffers, which grow when a pass needs more: a captured decode
// graph reads the settings, not the pointers, so it stays valid.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <span>
#include <vector>

#include "core/cuda/device_buffer.h"
#include "ops/cuda/sampling.h"
#include "ops/logit_penalties.h"

namespace shardlm::cuda {

class StagedPenalties {
 public:
  // Copies the rows' tokens on `stream` (of the sampling GPU, which must be current) and points
  // settings[i] at row i's; penalties: none, or one per row of settings.
  void stage(std::span<const LogitPenalties> penalties, std::span<RowSampling> settings, cudaStream_t stream);
  // After the sampling kernel: puts row i's raw logits back into a host copy of its logits.
  void restore_raw_logits(size_t row, std::span<float> logits) const;

 private:
  DeviceBuffer tokens_, raw_logits_;  // room for capacity_ tokens each
  size_t capacity_ = 0;
  std::vector<PenalisedToken> staged_;  // the pass's tokens, row after row
  std::vector<size_t> row_offsets_;     // where each row's begin in staged_, and the end
};

}  // namespace shardlm::cuda
