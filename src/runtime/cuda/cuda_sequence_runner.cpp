// The KV cache was sized when the model was set up; begin() only checks that the request fits.
#include "runtime/cuda/cuda_sequence_runner.h"

#include "core/error.h"

namespace shardlm::cuda {

void CudaSequenceRunner::begin(int n_sequences, int64_t max_tokens, const SamplingParams& sampling) {
  validate_sampling_params(sampling);
  if (n_sequences > model_.max_sequences())
    fail("{} sequences requested, but the GPU KV cache was set up for {} (raise --batch)", n_sequences,
         model_.max_sequences());
  if (max_tokens > model_.max_seq_len())
    fail("{} tokens per sequence requested, but the GPU KV cache holds {} (raise --max-seq-len)", max_tokens,
         model_.max_seq_len());
  sampling_ = sampling;
}

}  // namespace shardlm::cuda
