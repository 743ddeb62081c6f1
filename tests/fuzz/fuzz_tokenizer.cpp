// libFuzzer entry for the tokenizer. The input's first byte picks the mode, so that raw tokenizer.json
// files (tests/fuzz/seed_corpus.sh) seed the first one:
//   '{':   the input is a tokenizer.json; loading must either succeed or throw shardlm::Error (any other
//          exception or crash is a bug), and a loaded tokenizer must encode and decode a fixed text.
//   else:  the input is text (made valid UTF-8) for two fixed tokenizers, byte-level and SentencePiece
//          style: encode, decode, stream-decode, and also decode the raw bytes taken as ids. Byte-level
//          encoding without a normalizer is lossless, so decode(encode(text)) must give the text back
//          (unless the text contains "[X]", whose lstrip / rstrip swallow the spaces around it).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"

namespace {

using nlohmann::json;
using shardlm::Tokenizer;

json added_token(int id, const char* content, bool special, bool lstrip, bool rstrip, bool single_word) {
  return {{"id", id}, {"content", content}, {"special", special}, {"lstrip", lstrip}, {"rstrip", rstrip}, {"single_word", single_word}, {"normalized", !special}};
}

// Byte-level BPE with the Llama-3 split regex, a few merges and added tokens of every kind.
Tokenizer make_byte_level() {
  json vocab = json::object();
  std::vector<std::string> symbols;
  int next_extra = 0;
  for (int b = 0; b < 256; ++b) {
    // The GPT-2 table: printable Latin-1 keeps its code point, the rest counts up from U+0100.
    const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
    std::string symbol;
    shardlm::utf8::append_codepoint(symbol, printable ? char32_t(b) : char32_t(0x100 + next_extra++));
    vocab[symbol] = b;
    symbols.push_back(symbol);
  }
  const std::string space = symbols[' '];
  json merges = json::array();
  for (const auto& [left, right] : std::vector<std::pair<std::string, std::string>>{{space, "t"}, {"h", "e"}, {space + "t", "he"}, {"i", "n"}, {space, "a"}, {"e", "r"}}) {
    merges.push_back(left + " " + right);
    if (!vocab.contains(left + right)) vocab[left + right] = vocab.size();
  }
  const int n = static_cast<int>(vocab.size());
  const json tokenizer_json = {
      {"added_tokens", {added_token(n, "<|eot|>", true, false, false, false), added_token(n + 1, "[X]", true, true, true, false),
                        added_token(n + 2, "word", false, false, false, true)}},
      {"normalizer", nullptr},
      {"pre_tokenizer", {{"type", "Sequence"}, {"pretokenizers", {
          {{"type", "Split"}, {"pattern", {{"Regex", R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)"}}}, {"behavior", "Isolated"}, {"invert", false}},
          {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", false}}}}}},
      {"post_processor", nullptr},
      {"decoder", {{"type", "ByteLevel"}}},
      {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", merges}, {"ignore_merges", true}}}};
  return Tokenizer::from_json(tokenizer_json.dump(), "", "fuzz/byte_level/tokenizer.json");
}

// SentencePiece-style BPE: a small alphabet, byte fallback for everything else, unk, Metaspace.
Tokenizer make_sentencepiece() {
  json vocab = {{"<unk>", 0}, {"<s>", 1}, {"</s>", 2}};
  for (int b = 0; b < 256; b += 2) {  // only even bytes, so odd ones fall back to <unk>
    char name[8];
    std::snprintf(name, sizeof name, "<0x%02X>", b);
    vocab[name] = vocab.size();
  }
  for (const char* piece : {"\u2581", "a", "b", "c", "\u2581a", "\u2581ab", "ab"}) vocab[piece] = vocab.size();
  const json tokenizer_json = {
      {"added_tokens", {added_token(0, "<unk>", true, false, false, false), added_token(1, "<s>", true, false, false, false), added_token(2, "</s>", true, false, false, false)}},
      {"normalizer", nullptr},
      {"pre_tokenizer", {{"type", "Metaspace"}, {"replacement", "\u2581"}, {"prepend_scheme", "first"}, {"split", true}}},
      {"post_processor", {{"type", "TemplateProcessing"}, {"single", {{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}}, {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
                          {"special_tokens", {{"<s>", {{"id", "<s>"}, {"ids", {1}}, {"tokens", {"<s>"}}}}}}}},
      {"decoder", {{"type", "Sequence"}, {"decoders", {{{"type", "Replace"}, {"pattern", {{"String", "\u2581"}}}, {"content", " "}}, {{"type", "ByteFallback"}}, {{"type", "Fuse"}}, {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}}}}},
      {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", {"\u2581 a", "a b", "\u2581a b"}}, {"unk_token", "<unk>"}, {"fuse_unk", true}, {"byte_fallback", true}}}};
  return Tokenizer::from_json(tokenizer_json.dump(), "", "fuzz/sentencepiece/tokenizer.json");
}

void exercise(const Tokenizer& tokenizer, const std::string& text, bool lossless) {
  const std::vector<int32_t> ids = tokenizer.encode(text, true);
  const std::string decoded = tokenizer.decode(tokenizer.encode(text, false));
  if (lossless && decoded != text) std::abort();
  shardlm::StreamingDetokenizer detokenizer(tokenizer, false);
  std::string streamed;
  for (int32_t id : ids) streamed += detokenizer.push(id);
  streamed += detokenizer.flush();
  if (shardlm::utf8::first_invalid_offset(streamed) != shardlm::utf8::kInvalidOffset) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string rest(reinterpret_cast<const char*>(data), size);
  if (size > 0 && data[0] == '{') {
    try {
      const Tokenizer tokenizer = Tokenizer::from_json(rest, "", "fuzz/tokenizer.json");
      exercise(tokenizer, "Hello world, 12 345 ünïcödé 日本 😀 <s></s>", false);
    } catch (const shardlm::Error&) {
    }
    return 0;
  }
  static const Tokenizer byte_level = make_byte_level();
  static const Tokenizer sentencepiece = make_sentencepiece();
  const std::string text = shardlm::utf8::to_valid_lossy(rest);
  exercise(byte_level, text, text.find("[X]") == std::string::npos);
  exercise(sentencepiece, text, false);
  // The raw bytes as ids, to reach decoder paths encoding never produces (lone byte tokens etc.).
  for (const Tokenizer* tokenizer : {&byte_level, &sentencepiece}) {
    std::vector<int32_t> ids;
    for (unsigned char byte : rest) ids.push_back(byte % static_cast<int32_t>(tokenizer->vocab_size()));
    const std::string decoded = tokenizer->decode(ids);
    if (shardlm::utf8::first_invalid_offset(decoded) != shardlm::utf8::kInvalidOffset) std::abort();
  }
  return 0;
}
