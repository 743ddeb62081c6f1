// The generation loop's view of the CUDA model: sampling happens on the device.
#pragma once

#include "backend/cuda/cuda_llama_model.h"
#include "runtime/sequence_runner.h"

namespace shardlm::cuda {

class CudaSequenceRunner final : public SequenceRunner {
 public:
  explicit CudaSequenceRunner(CudaLlamaModel& model) : model_(model) {}
  const ModelConfig& config() const override { return model_.config(); }
  void begin(int n_sequences, int64_t max_tokens, const SamplingParams& sampling) override;
  std::vector<int32_t> step(std::span<const TokenRow> rows) override { return model_.forward_sample(rows, sampling_); }

 private:
  CudaLlamaModel& model_;
  SamplingParams sampling_;
};

}  // namespace shardlm::cuda
