// Incremental detokenization in the style of vLLM / TGI. Decoding a window that starts a few ids back
// (the context) and subtracting the context's own text gives exactly the text the new ids add, even for
// decoders whose output depends on position (SentencePiece's Strip of the first space). Text is held
// back while it ends in U+FFFD, which is how both HF decoders report an incomplete UTF-8 character.
#include <algorithm>

#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"

namespace shardlm {
namespace {

// Ids before the context window are dropped once this many have accumulated, bounding memory.
constexpr size_t kTrimThreshold = 1024;

}  // namespace

StreamingDetokenizer::StreamingDetokenizer(const Tokenizer& tokenizer, bool skip_special_tokens)
    : tokenizer_(&tokenizer), skip_special_tokens_(skip_special_tokens) {}

std::string StreamingDetokenizer::push(int32_t id) {
  // Skipped special tokens never enter the window, so a window never starts with an invisible token
  // (the Strip / Metaspace rules would otherwise apply to the following text).
  if (skip_special_tokens_ && tokenizer_->is_special(id)) {
    tokenizer_->decode(std::span<const int32_t>(&id, 1));  // still rejects ids outside the vocabulary
    return {};
  }
  ids_.push_back(id);
  const std::span<const int32_t> all(ids_);
  const std::string context_text = tokenizer_->decode(all.subspan(prefix_offset_, read_offset_ - prefix_offset_));
  const std::string window_text = tokenizer_->decode(all.subspan(prefix_offset_));
  if (window_text.size() <= context_text.size() || window_text.ends_with(utf8::kReplacementCharacter)) return {};
  std::string new_text = window_text.substr(context_text.size());
  // The emitted ids become the next context, unless they produced no text of their own: then the old
  // context stays so that the window still starts with visible text.
  if (!tokenizer_->decode(all.subspan(read_offset_)).empty()) prefix_offset_ = read_offset_;
  read_offset_ = ids_.size();
  if (prefix_offset_ >= kTrimThreshold) {
    ids_.erase(ids_.begin(), ids_.begin() + static_cast<std::ptrdiff_t>(prefix_offset_));
    read_offset_ -= prefix_offset_;
    prefix_offset_ = 0;
  }
  return new_text;
}

std::string StreamingDetokenizer::flush() {
  const std::span<const int32_t> all(ids_);
  const std::string context_text = tokenizer_->decode(all.subspan(prefix_offset_, read_offset_ - prefix_offset_));
  const std::string window_text = tokenizer_->decode(all.subspan(prefix_offset_));
  ids_.clear();
  prefix_offset_ = read_offset_ = 0;
  return window_text.size() > context_text.size() ? window_text.substr(context_text.size()) : std::string();
}

}  // namespace shardlm
