#include "runtime/sequence_output.h"

#include <algorithm>

namespace shardlm {

SequenceOutput::SequenceOutput(const Tokenizer& tokenizer, const StopStrings& stops,
                               std::vector<int32_t> eos_token_ids, int max_tokens, bool skip_special_tokens)
    : stops_(&stops),
      detokenizer_(tokenizer, skip_special_tokens),
      eos_token_ids_(std::move(eos_token_ids)),
      max_tokens_(max_tokens),
      skip_special_tokens_(skip_special_tokens) {}

std::string SequenceOutput::push(int32_t token) {
  tokens_.push_back(token);
  const bool is_eos = std::find(eos_token_ids_.begin(), eos_token_ids_.end(), token) != eos_token_ids_.end();
  // Kept special tokens show in the text, but not the EOS that ends it (when they are skipped, the
  // detokenizer leaves out a special EOS itself).
  if (!is_eos || skip_special_tokens_) decoded_ += detokenizer_.push(token);
  if (is_eos || int(tokens_.size()) >= max_tokens_) {
    decoded_ += detokenizer_.flush();
    finished_ = true;
    if (is_eos) finish_reason_ = "stop";
  }
  const size_t stop_at = stops_->find_stop(decoded_);
  if (stop_at != std::string::npos) {
    decoded_.resize(stop_at);
    finished_ = true;
    finish_reason_ = "stop";
  }
  const size_t end = std::max(emitted_, finished_ ? decoded_.size() : stops_->safe_length(decoded_));
  std::string piece = decoded_.substr(emitted_, end - emitted_);
  emitted_ = end;
  return piece;
}

}  // namespace shardlm
