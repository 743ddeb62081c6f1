// What a generated sequence has produced: its tokens, and its text as it becomes final. Each
// sampled token goes through the streaming detokenizer; EOS, max_tokens or a stop string ends the
// sequence (the text is cut before the stop string), and text that could still turn into a stop
// string is held back. Shared by generate() and the server's scheduler.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/stop_strings.h"
#include "tokenizer/tokenizer.h"

namespace shardlm {

class SequenceOutput {
 public:
  // `stops` must outlive this; eos_token_ids end the sequence (the EOS token is kept in tokens()).
  // Special tokens are left out of the text unless skip_special_tokens is false (as vLLM's field:
  // a reply parser may need markers such as Mistral's [TOOL_CALLS]); the EOS token that ends the
  // sequence never shows in it.
  SequenceOutput(const Tokenizer& tokenizer, const StopStrings& stops, std::vector<int32_t> eos_token_ids,
                 int max_tokens, bool skip_special_tokens = true);

  // Adds a sampled token; returns the text that became final with it (empty: none yet).
  std::string push(int32_t token);
  bool finished() const { return finished_; }
  const char* finish_reason() const { return finish_reason_; }  // "stop" (EOS or stop string) or "length"
  const std::vector<int32_t>& tokens() const { return tokens_; }
  // All final text so far (the whole output once finished).
  std::string_view text() const { return std::string_view(decoded_).substr(0, emitted_); }

 private:
  const StopStrings* stops_;
  StreamingDetokenizer detokenizer_;
  std::vector<int32_t> eos_token_ids_;
  int max_tokens_;
  bool skip_special_tokens_;
  std::vector<int32_t> tokens_;
  std::string decoded_;  // everything the detokenizer has released
  size_t emitted_ = 0;   // bytes of decoded_ returned by push()
  bool finished_ = false;
  const char* finish_reason_ = "length";
};

}  // namespace shardlm
