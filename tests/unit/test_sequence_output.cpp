// A generated sequence's text (runtime/sequence_output.h) with special tokens skipped, as replies
// are by default, and kept, as a reply parser that reads a special marker needs (Mistral's
// [TOOL_CALLS]): kept, they show in the text, but the EOS that ends the sequence never does.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "runtime/sequence_output.h"
#include "runtime/stop_strings.h"
#include "tokenizer/tokenizer.h"

namespace shardlm {
namespace {

TEST(SequenceOutput, SpecialTokensShowOnlyWhenKeptAndTheEndingEosNever) {
  const Tokenizer tokenizer = Tokenizer::from_dir(std::string(SHARDLM_SOURCE_DIR) + "/models/kjv-llama");
  const int32_t bos = 4094, eos = 4095;  // <|begin_of_text|>, <|end_of_text|>: both special
  ASSERT_TRUE(tokenizer.is_special(bos));
  const std::vector<int32_t> said = tokenizer.encode("And God said", /*add_special_tokens=*/false);
  const StopStrings no_stops({});
  for (const bool skip : {true, false}) {
    SequenceOutput output(tokenizer, no_stops, {eos}, 64, skip);
    std::string text;
    for (const int32_t token : said) text += output.push(token);
    text += output.push(bos);  // a special token in the middle of a reply
    text += output.push(said[0]);
    text += output.push(eos);
    EXPECT_TRUE(output.finished());
    EXPECT_STREQ(output.finish_reason(), "stop");
    const std::string first_word = tokenizer.decode(std::vector<int32_t>{said[0]});
    EXPECT_EQ(text, "And God said" + std::string(skip ? "" : "<|begin_of_text|>") + first_word) << "skip " << skip;
    EXPECT_EQ(output.tokens().back(), eos);
  }
}

}  // namespace
}  // namespace shardlm
