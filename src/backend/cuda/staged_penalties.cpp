#include "backend/cuda/staged_penalties.h"

#include <algorithm>
#include <utility>

#include "core/cuda/cuda_check.h"

namespace shardlm::cuda {

void StagedPenalties::stage(std::span<const LogitPenalties> penalties, std::span<RowSampling> settings,
                            cudaStream_t stream) {
  staged_.clear();
  row_offsets_.assign(1, 0);
  for (const LogitPenalties& row : penalties) {
    staged_.insert(staged_.end(), row.tokens.begin(), row.tokens.end());
    row_offsets_.push_back(staged_.size());
  }
  if (staged_.empty()) return;
  if (staged_.size() > capacity_) {
    // Freed buffers may still be read by the previous pass's kernel: wait for it first.
    CUDA_CHECK(cudaStreamSynchronize(stream));
    // capacity_ changes only once both allocations succeeded: a failed one leaves the old buffers
    // and their size, which the next pass checks against again.
    const size_t capacity = std::max(staged_.size(), 2 * capacity_);
    DeviceBuffer tokens(capacity * sizeof(PenalisedToken)), raw_logits(capacity * sizeof(float));
    tokens_ = std::move(tokens);
    raw_logits_ = std::move(raw_logits);
    capacity_ = capacity;
  }
  CUDA_CHECK(cudaMemcpyAsync(tokens_.get(), staged_.data(), staged_.size() * sizeof(PenalisedToken),
                             cudaMemcpyHostToDevice, stream));
  for (size_t i = 0; i < penalties.size(); ++i) {
    const size_t first = row_offsets_[i], count = row_offsets_[i + 1] - first;
    if (count == 0) continue;
    RowSampling& row = settings[i];
    row.scales = penalties[i].scales;
    row.n_penalised = int32_t(count);
    row.penalised = tokens_.get<PenalisedToken>() + first;
    row.raw_logits = raw_logits_.get<float>() + first;
  }
}

void StagedPenalties::restore_raw_logits(size_t row, std::span<float> logits) const {
  if (row + 1 >= row_offsets_.size()) return;
  const size_t first = row_offsets_[row], count = row_offsets_[row + 1] - first;
  if (count == 0) return;
  std::vector<float> raw(count);
  CUDA_CHECK(cudaMemcpy(raw.data(), raw_logits_.get<float>() + first, count * sizeof(float), cudaMemcpyDeviceToHost));
  for (size_t i = 0; i < count; ++i) logits[size_t(staged_[first + i].token)] = raw[i];
}

}  // namespace shardlm::cuda
