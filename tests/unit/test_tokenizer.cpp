// Unit tests of the tokenizer components on small hand-written tokenizer.json documents, the error
// messages for bad input, decode round trips and the streaming detokenizer. Expected values for the
// subtle cases (U+0085, single_word, normalized added tokens, byte-level added tokens) were taken from
// the Rust tokenizers library 0.23.2, the one Transformers 5.17 uses.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <thread>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/decoder.h"
#include "tokenizer/pre_tokenizer.h"
#include "tokenizer/regex.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"

namespace shardlm {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

const fs::path kTokenizerFixtures = fs::path(SHARDLM_FIXTURES_DIR) / "tokenizers";

// The byte-level spelling of UTF-8 text ("Ġ" for space and so on).
std::string spell(std::string_view text) {
  std::string out;
  byte_level::append_encoded(text, out);
  return out;
}

// A byte-level BPE tokenizer.json: the 256 byte characters, then one token per merge (given as plain
// text, e.g. {"H", "e"}), then `extra_tokens`.
json byte_level_tokenizer(const std::vector<std::pair<std::string, std::string>>& merges, const std::vector<std::string>& extra_tokens = {}) {
  json vocab = json::object();
  for (int b = 0; b < 256; ++b) vocab[spell(std::string(1, static_cast<char>(b)))] = b;
  json merge_list = json::array();
  for (const auto& [left, right] : merges) {
    merge_list.push_back(spell(left) + " " + spell(right));
    if (!vocab.contains(spell(left + right))) vocab[spell(left + right)] = vocab.size();
  }
  for (const std::string& token : extra_tokens) vocab[spell(token)] = vocab.size();
  const json byte_level = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", true}};
  return {{"version", "1.0"},        {"added_tokens", json::array()}, {"normalizer", nullptr}, {"pre_tokenizer", byte_level},
          {"post_processor", nullptr}, {"decoder", byte_level},
          {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", merge_list}, {"fuse_unk", false}, {"byte_fallback", false}, {"ignore_merges", false}}}};
}

Tokenizer load(const json& tokenizer_json, const json& config = nullptr) {
  return Tokenizer::from_json(tokenizer_json.dump(), config.is_null() ? "" : config.dump(), "test/tokenizer.json");
}

int32_t id_of(const Tokenizer& tokenizer, std::string_view token) {
  const auto id = tokenizer.token_to_id(token);
  if (!id) throw std::runtime_error("no token " + std::string(token));
  return *id;
}

std::string error_of(const std::function<void()>& action) {
  try {
    action();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

const std::vector<std::pair<std::string, std::string>> kHelloMerges = {
    {"H", "e"}, {"l", "l"}, {"He", "ll"}, {"Hell", "o"}, {" ", "w"}, {"o", "r"}, {" w", "or"}, {"l", "d"}, {" wor", "ld"}};

TEST(Utf8, LossyDecodingReplacesMaximalSubparts) {
  EXPECT_EQ(utf8::to_valid_lossy("ok"), "ok");
  EXPECT_EQ(utf8::to_valid_lossy("\xE2\x82" "a"), "\uFFFD" "a");      // truncated 3-byte sequence: one U+FFFD
  EXPECT_EQ(utf8::to_valid_lossy("\xF0\x9F\x98"), "\uFFFD");           // truncated emoji at the end
  EXPECT_EQ(utf8::to_valid_lossy("\xC0\x80"), "\uFFFD\uFFFD");         // overlong: each byte invalid
  EXPECT_EQ(utf8::to_valid_lossy("\xED\xA0\x80"), "\uFFFD\uFFFD\uFFFD");  // surrogate
  EXPECT_EQ(utf8::first_invalid_offset("ab\xFF"), 2u);
  EXPECT_EQ(utf8::first_invalid_offset("\xF0\x9F\x98\x80"), utf8::kInvalidOffset);
}

TEST(ByteLevel, TableRoundTripsEveryByte) {
  for (int b = 0; b < 256; ++b) {
    const std::string spelled = spell(std::string(1, static_cast<char>(b)));
    size_t pos = 0;
    EXPECT_EQ(byte_level::decode_codepoint(utf8::decode_next(spelled, pos)), b);
  }
  EXPECT_EQ(spell(" \n"), "\u0120\u010A");  // "ĠĊ"
  EXPECT_EQ(spell("A"), "A");
}

TEST(Regex, TranslatesOnigurumaEscapes) {
  EXPECT_EQ(translate_oniguruma_pattern(R"(\p{L}+)"), R"(\p{L}+)");
  EXPECT_NE(translate_oniguruma_pattern(R"(\s+)"), R"(\s+)");
  // Oniguruma's \s excludes U+180E, PCRE2's includes it; \h is a hex digit in Oniguruma.
  const Regex spaces = Regex::compile(R"(\s+)", "test");
  EXPECT_EQ(spaces.find_all("a\u180E b\u0085").size(), 2u);
  EXPECT_EQ(Regex::compile(R"(\h+)", "test").find_all("zz09afG").front(), std::make_pair(size_t(2), size_t(6)));
  EXPECT_EQ(Regex::compile(R"([\H]+)", "test").find_all("12xy3").front(), std::make_pair(size_t(2), size_t(4)));
}

TEST(Regex, EmptyMatchesFollowOnigurumaIteration) {
  const Regex maybe_a = Regex::compile("a*", "test");
  const std::vector<std::pair<size_t, size_t>> expected = {{0, 0}, {1, 3}, {4, 4}};
  EXPECT_EQ(maybe_a.find_all("baab"), expected);
  EXPECT_EQ(Regex::literal("a.b\\E", "test").find_all("xa.b\\Ey").size(), 1u);
}

TEST(Tokenizer, ByteLevelMergesByRank) {
  const Tokenizer tokenizer = load(byte_level_tokenizer(kHelloMerges));
  EXPECT_EQ(tokenizer.encode("Hello world"), (std::vector<int32_t>{id_of(tokenizer, "Hello"), id_of(tokenizer, spell(" world"))}));
  EXPECT_EQ(tokenizer.decode(tokenizer.encode("Hello world")), "Hello world");
  // Equal ranks resolve leftmost first: "lll" is "ll" + "l".
  EXPECT_EQ(tokenizer.encode("lll"), (std::vector<int32_t>{id_of(tokenizer, "ll"), id_of(tokenizer, "l")}));
}

TEST(Tokenizer, MergesAsPairsEqualMergesAsStrings) {
  json strings = byte_level_tokenizer(kHelloMerges);
  json pairs = strings;
  for (auto& merge : pairs["model"]["merges"]) {
    const std::string text = merge;
    merge = json::array({text.substr(0, text.find(' ')), text.substr(text.find(' ') + 1)});
  }
  EXPECT_EQ(load(strings).encode("Hello world, Hell"), load(pairs).encode("Hello world, Hell"));
}

TEST(Tokenizer, IgnoreMergesEmitsWholeVocabWords) {
  json tokenizer_json = byte_level_tokenizer(kHelloMerges, {" xyz"});
  EXPECT_EQ(load(tokenizer_json).encode(" xyz").size(), 4u);
  tokenizer_json["model"]["ignore_merges"] = true;
  const Tokenizer tokenizer = load(tokenizer_json);
  EXPECT_EQ(tokenizer.encode(" xyz"), std::vector<int32_t>{id_of(tokenizer, spell(" xyz"))});
}

TEST(Tokenizer, Gpt2RegexTreatsNextLineAsWhitespace) {
  // U+0085 is White_Space, so "\n\n\u0085" is one \s+ run: [ĊĊ, Â, ħ, x], as the Rust library gives.
  const Tokenizer tokenizer = Tokenizer::from_dir(kTokenizerFixtures / "handmade" / "gpt2-bytelevel");
  EXPECT_EQ(tokenizer.encode("\n\n\u0085x"), (std::vector<int32_t>{333, 126, 227, 87}));
}

TEST(Tokenizer, AddedTokensSplitBeforeNormalization) {
  json tokenizer_json = byte_level_tokenizer(kHelloMerges);
  const int32_t eot = 300, strip_both = 301, word = 302;
  tokenizer_json["added_tokens"] = {
      {{"id", eot}, {"content", "<|eot|>"}, {"special", true}, {"normalized", false}, {"lstrip", false}, {"rstrip", false}, {"single_word", false}},
      {{"id", strip_both}, {"content", "[S]"}, {"special", true}, {"normalized", false}, {"lstrip", true}, {"rstrip", true}, {"single_word", false}},
      {{"id", word}, {"content", "word"}, {"special", false}, {"normalized", true}, {"lstrip", false}, {"rstrip", false}, {"single_word", true}},
  };
  const Tokenizer tokenizer = load(tokenizer_json);
  const int32_t hello = id_of(tokenizer, "Hello");
  EXPECT_EQ(tokenizer.encode("Hello<|eot|>Hello"), (std::vector<int32_t>{hello, eot, hello}));
  // Longest match wins and lstrip/rstrip swallow the surrounding spaces.
  EXPECT_EQ(tokenizer.encode("Hello  [S]  Hello"), (std::vector<int32_t>{hello, strip_both, hello}));
  // single_word: only where no word character (regex \w) touches it. Values from the Rust library.
  EXPECT_EQ(tokenizer.encode("½word").back(), word);
  EXPECT_NE(tokenizer.encode("❤\uFE0Fword").back(), word);  // the variation selector is a mark, so \w
  EXPECT_NE(tokenizer.encode("ⓐword").back(), word);         // circled letters are Alphabetic
  EXPECT_NE(tokenizer.encode("wordx").front(), word);
  EXPECT_EQ(tokenizer.encode("x word y")[2], word);  // x, Ġ, word, Ġ, y
  EXPECT_TRUE(tokenizer.is_special(eot));
  EXPECT_FALSE(tokenizer.is_special(word));
  EXPECT_EQ(tokenizer.decode(std::vector<int32_t>{hello, eot, word}, true), "Helloword");
  EXPECT_EQ(tokenizer.decode(std::vector<int32_t>{hello, eot, word}, false), "Hello<|eot|>word");
}

TEST(Tokenizer, NormalizedAddedTokensMatchAndDecodeInNormalizedForm) {
  json tokenizer_json = byte_level_tokenizer(kHelloMerges);
  tokenizer_json["normalizer"] = {{"type", "NFC"}};
  tokenizer_json["added_tokens"] = {{{"id", 300}, {"content", "Cafe\u0301"}, {"special", false}, {"normalized", true}}};
  const Tokenizer tokenizer = load(tokenizer_json);
  // NFC turns the input's "e" + U+0301 into "é" and the token's pattern likewise.
  EXPECT_EQ(tokenizer.encode("Cafe\u0301 x").front(), 300);
  EXPECT_EQ(tokenizer.encode("Café").front(), 300);
  // Rust decodes it from "Café", whose "é" is a byte-table character (byte 0xE9): "Caf\uFFFD".
  EXPECT_EQ(tokenizer.decode(std::vector<int32_t>{300}), "Caf\uFFFD");
  EXPECT_EQ(tokenizer.id_to_token(300), "Café");
}

TEST(Tokenizer, NfkcNormalizer) {
  json tokenizer_json = byte_level_tokenizer({{"f", "i"}});
  tokenizer_json["normalizer"] = {{"type", "Sequence"}, {"normalizers", {{{"type", "NFKC"}}}}};
  const Tokenizer tokenizer = load(tokenizer_json);
  EXPECT_EQ(tokenizer.encode("\uFB01"), std::vector<int32_t>{id_of(tokenizer, "fi")});  // the "ﬁ" ligature
}

std::vector<std::string> pre_tokenize(const json& config, std::string text, bool at_text_start = true) {
  std::vector<PreToken> pieces{{std::move(text), at_text_start}};
  make_pre_tokenizer(config, "test")->pre_tokenize(pieces);
  std::vector<std::string> texts;
  for (const PreToken& piece : pieces) texts.push_back(piece.text);
  return texts;
}

json split_config(const char* behavior, bool invert = false) {
  return {{"type", "Split"}, {"pattern", {{"String", "-"}}}, {"behavior", behavior}, {"invert", invert}};
}

TEST(PreTokenizer, SplitBehaviors) {
  using Pieces = std::vector<std::string>;
  EXPECT_EQ(pre_tokenize(split_config("Removed"), "a-b--c"), (Pieces{"a", "b", "c"}));
  EXPECT_EQ(pre_tokenize(split_config("Isolated"), "a-b--c"), (Pieces{"a", "-", "b", "-", "-", "c"}));
  EXPECT_EQ(pre_tokenize(split_config("MergedWithPrevious"), "a-b--c"), (Pieces{"a-", "b-", "-", "c"}));
  EXPECT_EQ(pre_tokenize(split_config("MergedWithNext"), "a-b--c"), (Pieces{"a", "-b", "-", "-c"}));
  EXPECT_EQ(pre_tokenize(split_config("Contiguous"), "a-b--c"), (Pieces{"a", "-", "b", "--", "c"}));
  EXPECT_EQ(pre_tokenize(split_config("Removed", true), "a-b--c"), (Pieces{"-", "-", "-"}));
}

TEST(PreTokenizer, Llama3RegexSplit) {
  const json config = {{"type", "Split"},
                       {"pattern", {{"Regex", R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)"}}},
                       {"behavior", "Isolated"},
                       {"invert", false}};
  using Pieces = std::vector<std::string>;
  EXPECT_EQ(pre_tokenize(config, "I'LL pay 12345  now!\n\n"), (Pieces{"I", "'LL", " pay", " ", "123", "45", " ", " now", "!\n\n"}));
}

TEST(PreTokenizer, MetaspacePrependSchemes) {
  using Pieces = std::vector<std::string>;
  const auto metaspace = [](const char* scheme, bool split) {
    return json{{"type", "Metaspace"}, {"replacement", "\u2581"}, {"prepend_scheme", scheme}, {"split", split}};
  };
  EXPECT_EQ(pre_tokenize(metaspace("always", true), "Hey  you"), (Pieces{"▁Hey", "▁", "▁you"}));
  EXPECT_EQ(pre_tokenize(metaspace("first", false), "Hey you"), (Pieces{"▁Hey▁you"}));
  EXPECT_EQ(pre_tokenize(metaspace("first", false), "Hey", false), (Pieces{"Hey"}));  // not at the text start
  EXPECT_EQ(pre_tokenize(metaspace("never", false), "Hey"), (Pieces{"Hey"}));
}

std::string decode_chain(const json& config, std::vector<std::string> tokens) {
  make_decoder(config, "test")->decode_chain(tokens);
  std::string text;
  for (const std::string& token : tokens) text += token;
  return text;
}

TEST(Decoder, SentencePieceChain) {
  const json config = {{"type", "Sequence"},
                       {"decoders",
                        {{{"type", "Replace"}, {"pattern", {{"String", "\u2581"}}}, {"content", " "}},
                         {{"type", "ByteFallback"}},
                         {{"type", "Fuse"}},
                         {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}}}};
  EXPECT_EQ(decode_chain(config, {"▁Hello", "▁", "<0xF0>", "<0x9F>", "<0x98>", "<0x80>"}), "Hello 😀");
  // An invalid run of byte tokens becomes one U+FFFD per byte (unlike ByteLevel's lossy decoding).
  EXPECT_EQ(decode_chain(config, {"▁a", "<0xF0>", "<0x9F>", "b"}), "a\uFFFD\uFFFDb");
}

TEST(Decoder, ByteLevelIsLossyOverAllBytes) {
  const json config = {{"type", "ByteLevel"}};
  EXPECT_EQ(decode_chain(config, {spell("\xF0\x9F"), spell("\x98\x80")}), "😀");
  EXPECT_EQ(decode_chain(config, {spell("\xF0\x9F"), "a"}), "\uFFFDa");
  // A token with characters outside the byte table contributes its own UTF-8.
  EXPECT_EQ(decode_chain(config, {"▁x", spell(" y")}), "▁x y");
}

TEST(Decoder, MetaspaceDropsReplacementInFirstToken) {
  const json config = {{"type", "Metaspace"}, {"replacement", "\u2581"}, {"prepend_scheme", "always"}, {"split", true}};
  EXPECT_EQ(decode_chain(config, {"▁▁Hey", "▁you"}), "Hey you");
  const json never = {{"type", "Metaspace"}, {"replacement", "\u2581"}, {"prepend_scheme", "never"}, {"split", true}};
  EXPECT_EQ(decode_chain(never, {"▁Hey"}), " Hey");
}

TEST(Tokenizer, SentencePieceByteFallbackAndUnk) {
  json vocab = {{"<unk>", 0}, {"<s>", 1}, {"</s>", 2}, {"▁", 3}, {"a", 4}, {"▁a", 5}, {"<0xE2>", 6}, {"<0x82>", 7}, {"<0xAC>", 8}};
  json tokenizer_json = {
      {"added_tokens", {{{"id", 0}, {"content", "<unk>"}, {"special", true}}, {{"id", 1}, {"content", "<s>"}, {"special", true}}, {{"id", 2}, {"content", "</s>"}, {"special", true}}}},
      {"normalizer", {{"type", "Sequence"}, {"normalizers", {{{"type", "Prepend"}, {"prepend", "▁"}}, {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", "▁"}}}}}},
      {"pre_tokenizer", nullptr},
      {"post_processor", {{"type", "TemplateProcessing"},
                          {"single", {{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}}, {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
                          {"special_tokens", {{"<s>", {{"id", "<s>"}, {"ids", {1}}, {"tokens", {"<s>"}}}}}}}},
      {"decoder", {{"type", "Sequence"}, {"decoders", {{{"type", "Replace"}, {"pattern", {{"String", "▁"}}}, {"content", " "}}, {{"type", "ByteFallback"}}, {{"type", "Fuse"}}, {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}}}}},
      {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", {"▁ a"}}, {"unk_token", "<unk>"}, {"fuse_unk", true}, {"byte_fallback", true}}}};
  const Tokenizer tokenizer = load(tokenizer_json);
  EXPECT_EQ(tokenizer.encode("a €"), (std::vector<int32_t>{1, 5, 3, 6, 7, 8}));  // "€" = E2 82 AC via byte fallback
  EXPECT_EQ(tokenizer.encode("a xyz", false), (std::vector<int32_t>{5, 3, 0}));  // fuse_unk: one <unk> for "xyz"
  EXPECT_EQ(tokenizer.decode(tokenizer.encode("a €"), true), "a €");
  EXPECT_EQ(tokenizer.bos_token_id(), 1);
  EXPECT_FALSE(tokenizer.eos_token_id());
  tokenizer_json["model"]["fuse_unk"] = false;
  EXPECT_EQ(load(tokenizer_json).encode("a xy", false), (std::vector<int32_t>{5, 3, 0, 0}));
}

TEST(Tokenizer, ConfigNamesBosAndEosButTemplateDecidesWhatIsAdded) {
  json tokenizer_json = byte_level_tokenizer(kHelloMerges);
  tokenizer_json["added_tokens"] = {{{"id", 300}, {"content", "<s>"}, {"special", true}}, {{"id", 301}, {"content", "</s>"}, {"special", true}}};
  const json config = {{"bos_token", "<s>"}, {"eos_token", {{"content", "</s>"}, {"lstrip", false}}}, {"add_bos_token", true}, {"add_eos_token", true}};
  const Tokenizer tokenizer = load(tokenizer_json, config);
  EXPECT_EQ(tokenizer.bos_token_id(), 300);
  EXPECT_EQ(tokenizer.eos_token_id(), 301);
  // Transformers 5.17 ignores add_bos_token / add_eos_token: no post-processor, no special tokens.
  EXPECT_EQ(tokenizer.encode("Hello"), std::vector<int32_t>{id_of(tokenizer, "Hello")});
  EXPECT_EQ(tokenizer.vocab_size(), 256u + kHelloMerges.size() + 2);
  EXPECT_EQ(tokenizer.id_to_token(300), "<s>");
  EXPECT_FALSE(tokenizer.id_to_token(5000));
}

TEST(Tokenizer, ConfigNamedTokenInVocabBecomesSpecial) {
  const json config = {{"eos_token", "Hello"}};
  const Tokenizer tokenizer = load(byte_level_tokenizer(kHelloMerges), config);
  const int32_t hello = id_of(tokenizer, "Hello");
  EXPECT_TRUE(tokenizer.is_special(hello));
  EXPECT_EQ(tokenizer.decode(std::vector<int32_t>{hello, id_of(tokenizer, spell(" world"))}, true), " world");
}

TEST(TokenizerErrors, NameTheFileAndTheProblem) {
  const json good = byte_level_tokenizer(kHelloMerges);
  EXPECT_NE(error_of([] { Tokenizer::from_json("{not json", "", "dir/tokenizer.json"); }).find("dir/tokenizer.json: malformed JSON"), std::string::npos);
  EXPECT_EQ(error_of([] { Tokenizer::from_json("{}", "", "dir/tokenizer.json"); }), "dir/tokenizer.json: missing \"model\"");
  json digits = good;
  digits["pre_tokenizer"] = {{"type", "Digits"}, {"individual_digits", true}};
  EXPECT_EQ(error_of([&] { Tokenizer::from_json(digits.dump(), "", "tokenizer.json"); }), "tokenizer.json: unsupported pre_tokenizer type \"Digits\"");
  json lowercase = good;
  lowercase["normalizer"] = {{"type", "Lowercase"}};
  EXPECT_EQ(error_of([&] { load(lowercase); }), "test/tokenizer.json: unsupported normalizer type \"Lowercase\"");
  json wordpiece = good;
  wordpiece["model"]["type"] = "WordPiece";
  EXPECT_NE(error_of([&] { load(wordpiece); }).find("unsupported model type \"WordPiece\""), std::string::npos);
  json bad_merge = good;
  bad_merge["model"]["merges"].push_back("Q zzz");
  EXPECT_NE(error_of([&] { load(bad_merge); }).find("names \"zzz\", which is not in the vocab"), std::string::npos);
  json bad_regex = good;
  bad_regex["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"Regex", "(unclosed"}}}, {"behavior", "Isolated"}, {"invert", false}};
  EXPECT_NE(error_of([&] { load(bad_regex); }).find("invalid regex"), std::string::npos);
  json roberta = good;
  roberta["post_processor"] = {{"type", "RobertaProcessing"}};
  EXPECT_EQ(error_of([&] { load(roberta); }), "test/tokenizer.json: unsupported post_processor type \"RobertaProcessing\"");
  json dropout = good;
  dropout["model"]["dropout"] = 0.1;
  EXPECT_NE(error_of([&] { load(dropout); }).find("dropout"), std::string::npos);
  EXPECT_NE(error_of([] { Tokenizer::from_dir("/nonexistent-dir"); }).find("/nonexistent-dir/tokenizer.json: cannot open file"), std::string::npos);
  EXPECT_NE(error_of([&] { Tokenizer::from_json(good.dump(), "[1,", "dir/tokenizer.json"); }).find("dir/tokenizer_config.json: malformed JSON"), std::string::npos);

  const Tokenizer tokenizer = load(good);
  EXPECT_NE(error_of([&] { tokenizer.decode(std::vector<int32_t>{0, 99999}); }).find("id 99999 is not in the vocabulary"), std::string::npos);
  EXPECT_NE(error_of([&] { tokenizer.decode(std::vector<int32_t>{-1}); }).find("id -1"), std::string::npos);
  EXPECT_NE(error_of([&] { tokenizer.encode("ok\xFF"); }).find("not valid UTF-8 (byte 2"), std::string::npos);
}

TEST(Tokenizer, DecodeRoundTripsOnEveryReferenceTokenizer) {
  // No leading space: the Metaspace decoder drops it, in HF as here.
  const std::vector<std::string> texts = {"Hello world", "double  spaces and trailing ", "tabs\tand\nnewlines\r\n", "naïve café 日本語 😀👍🏽",
                                          "x = f(1, 2) // 3.14", ""};
  for (const char* name : {"gpt2-bytelevel", "llama3-bytelevel", "qwen2-bytelevel-nfc", "llama2-sentencepiece", "mistral-metaspace"}) {
    const Tokenizer tokenizer = Tokenizer::from_dir(kTokenizerFixtures / name);
    for (const std::string& text : texts) EXPECT_EQ(tokenizer.decode(tokenizer.encode(text), true), text) << name;
  }
}

TEST(Tokenizer, ConcurrentEncodesAgree) {
  const Tokenizer tokenizer = Tokenizer::from_dir(kTokenizerFixtures / "llama3-bytelevel");
  std::vector<std::string> texts;
  for (int i = 0; i < 200; ++i) texts.push_back("sample " + std::to_string(i * 7919) + " with words like tokenizer" + std::string(i % 5, '!'));
  std::vector<std::vector<int32_t>> sequential;
  for (const auto& text : texts) sequential.push_back(tokenizer.encode(text));
  std::vector<std::vector<std::vector<int32_t>>> results(4);
  std::vector<std::thread> threads;
  for (auto& result : results) {
    threads.emplace_back([&] {
      for (const auto& text : texts) result.push_back(tokenizer.encode(text));
    });
  }
  for (auto& thread : threads) thread.join();
  for (const auto& result : results) EXPECT_EQ(result, sequential);
}

// Streams `ids` through a detokenizer; checks every chunk is valid UTF-8 without U+FFFD (when the full
// text has none) and returns the concatenation.
std::string stream(const Tokenizer& tokenizer, const std::vector<int32_t>& ids, bool check_no_replacement) {
  StreamingDetokenizer detokenizer(tokenizer);
  std::string text;
  for (int32_t id : ids) {
    const std::string chunk = detokenizer.push(id);
    EXPECT_EQ(utf8::first_invalid_offset(chunk), utf8::kInvalidOffset);
    if (check_no_replacement) EXPECT_EQ(chunk.find(utf8::kReplacementCharacter), std::string::npos) << "id " << id;
    text += chunk;
  }
  return text + detokenizer.flush();
}

TEST(StreamingDetokenizer, EmojiOverByteFallbackTokensIsNeverSplit) {
  const Tokenizer tokenizer = Tokenizer::from_dir(kTokenizerFixtures / "llama2-sentencepiece");
  const std::vector<int32_t> ids = tokenizer.encode("Hi 😀 there");
  const auto first_byte = std::find(ids.begin(), ids.end(), id_of(tokenizer, "<0xF0>"));
  ASSERT_NE(first_byte, ids.end());  // the emoji is four byte tokens
  const auto emoji_at = static_cast<size_t>(first_byte - ids.begin());
  StreamingDetokenizer detokenizer(tokenizer);
  std::vector<std::string> chunks;
  for (int32_t id : ids) chunks.push_back(detokenizer.push(id));
  EXPECT_EQ(chunks[0], "");  // <s> is skipped
  EXPECT_EQ(chunks[emoji_at] + chunks[emoji_at + 1] + chunks[emoji_at + 2], "");  // bytes F0 9F 98 are held back
  EXPECT_EQ(chunks[emoji_at + 3], "😀");
  std::string all;
  for (const std::string& chunk : chunks) all += chunk;
  EXPECT_EQ(all + detokenizer.flush(), tokenizer.decode(ids, true));
}

TEST(StreamingDetokenizer, ConcatenationEqualsFullDecodeOnReferenceCases) {
  for (const auto& entry : fs::directory_iterator(kTokenizerFixtures)) {
    if (!fs::exists(entry.path() / "expected.json")) continue;
    const Tokenizer tokenizer = Tokenizer::from_dir(entry.path());
    std::ifstream file(entry.path() / "expected.json");
    const json expected = json::parse(file);
    for (const json& c : expected["cases"]) {
      const auto ids = c["ids"].get<std::vector<int32_t>>();
      const std::string full = tokenizer.decode(ids, true);
      EXPECT_EQ(stream(tokenizer, ids, full.find(utf8::kReplacementCharacter) == std::string::npos), full)
          << entry.path().filename() << " " << json(c["text"]).dump();
    }
  }
}

TEST(StreamingDetokenizer, LeadingSpaceRulesAcrossTheWindow) {
  // SentencePiece's Strip removes only the first space of the whole text; later words keep theirs.
  const Tokenizer tokenizer = Tokenizer::from_dir(kTokenizerFixtures / "llama2-sentencepiece");
  const std::vector<int32_t> ids = tokenizer.encode(" one two  three", false);
  EXPECT_EQ(stream(tokenizer, ids, true), tokenizer.decode(ids));
  EXPECT_EQ(stream(tokenizer, ids, true), " one two  three");
  StreamingDetokenizer detokenizer(tokenizer);
  EXPECT_THROW(detokenizer.push(123456), Error);
}

}  // namespace
}  // namespace shardlm
