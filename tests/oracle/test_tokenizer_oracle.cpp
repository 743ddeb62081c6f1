// Differential test: for every tokenizer.json under tests/fixtures/tokenizers/ (the hand-made ones and
// the Transformers reference fixtures), a few thousand generated strings are encoded and decoded by our
// Tokenizer and by @huggingface/tokenizers, and the ids and decoded text must agree. The strings are
// random mixes (fixed seed) of the things tokenizers get wrong: whitespace runs, tabs and CRLF,
// contractions, accents in both normal forms, CJK, emoji with joiners, digits, code, Unicode spaces and
// the tokenizer's own added-token text. Only tokenizer.json is compared (see oracle_encode.mjs).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "tokenizer/tokenizer.h"

namespace shardlm {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr int kStringsPerTokenizer = 2500;
constexpr int kMismatchesShown = 5;

std::string read_text(const fs::path& path) {
  std::ifstream file(path, std::ios::binary);
  std::ostringstream contents;
  contents << file.rdbuf();
  return contents.str();
}

std::vector<fs::path> find_tokenizer_files() {
  std::vector<fs::path> files;
  for (const auto& entry : fs::recursive_directory_iterator(fs::path(SHARDLM_FIXTURES_DIR) / "tokenizers")) {
    if (entry.is_regular_file() && entry.path().filename() == "tokenizer.json") files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  return files;
}

// Random test strings built from fragments; `added_tokens` are the tokenizer's own added-token texts.
std::vector<std::string> generate_strings(const std::vector<std::string>& added_tokens, uint32_t seed) {
  const std::vector<std::string> words = {"the", "The", "THE", "hello", "world", "Hello", "tokenizer", "encode", "Zürich",
                                          "naïve", "café", "Cafe\u0301", "São", "Ångström", "ﬁnance", "ＡＢＣ", "１２３",
                                          "Ελληνικά", "Русский", "日本語", "中文文本", "한국어", "हिन्दी", "العربية", "ไทย",
                                          "word", "words", "x", "a", "I", "foo_bar", "camelCase", "SCREAMING", "▁", "▁▁hi"};
  const std::vector<std::string> contractions = {"'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'LL", "n't", "'", "’s"};
  // No U+0085 (NEL): tokenizers.js's ByteLevel regex uses JavaScript's \s, which lacks it, so it splits
  // differently from Rust there; unit tests cover NEL against values from the Rust library instead.
  const std::vector<std::string> spaces = {" ", " ", " ", "  ", "   ", "\t", "\n", "\n\n", "\r\n", " \n ", "\t\t", "\u00A0",
                                           "\u3000", "\u2009", "\u180E", "\u200B", "\u2028", "\x0B", "\x0C", "\x1F"};
  const std::vector<std::string> symbols = {".", ",", "!", "?", ";", ":", "-", "--", "...", "(", ")", "{", "}", "[", "]",
                                            "->", "==", "();", "#", "$", "%", "&&", "@", "\"", "`", "~", "|", "\\", "/*", "*/",
                                            "•", "→", "✓", "€", "©", "½", "²", "\x01", "\x7F", "\uFFFD"};
  const std::vector<std::string> emoji = {"😀", "🎉", "👍🏽", "👨‍👩‍👧", "❤️", "🇩🇪", "🏳️‍🌈", "🤖", "\U0001F9EA", "\U00010348"};
  std::mt19937 rng(seed);
  const auto pick = [&](const std::vector<std::string>& list) -> const std::string& { return list[rng() % list.size()]; };
  std::vector<std::string> strings = {"", " ", "  ", "\n", "a", "Hello world", " Hello world", "Hello  world ", "\t\tindented",
                                      "I'm here, they'll see. We'VE GOT IT", "1234567890 12 3", "naïve café vs Cafe\u0301"};
  for (const std::string& token : added_tokens) {
    strings.push_back(token);
    strings.push_back("Hi " + token + " there");
    strings.push_back(token + token + "x" + token);
    strings.push_back(" " + token + "  ");
  }
  while (strings.size() < static_cast<size_t>(kStringsPerTokenizer)) {
    std::string text;
    const int n_fragments = static_cast<int>(rng() % 14);
    for (int i = 0; i < n_fragments; ++i) {
      switch (rng() % 10) {
        case 0: case 1: case 2: text += pick(words); break;
        case 3: text += pick(contractions); break;
        case 4: case 5: text += pick(spaces); break;
        case 6: text += pick(symbols); break;
        case 7: text += pick(emoji); break;
        case 8: text += std::to_string(rng() % (rng() % 2 ? 100 : 10000000)); break;
        case 9:
          if (!added_tokens.empty()) {
            const std::string& token = pick(added_tokens);
            size_t cut = rng() % 4 ? token.size() : token.size() / 2;  // sometimes only a prefix,
            while (cut > 0 && cut < token.size() && (static_cast<unsigned char>(token[cut]) & 0xC0) == 0x80) --cut;  // whole characters
            text += token.substr(0, cut);
          }
          break;
      }
    }
    strings.push_back(std::move(text));
  }
  return strings;
}

json run_oracle(const fs::path& tokenizer_file, const fs::path& strings_file) {
  const std::string command = fmt::format("\"{}\" \"{}\" \"{}\" \"{}\"", SHARDLM_NODE_EXECUTABLE,
                                          (fs::path(SHARDLM_ORACLE_DIR) / "oracle_encode.mjs").string(), tokenizer_file.string(),
                                          strings_file.string());
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen(command.c_str(), "r"), pclose);
  if (!pipe) throw std::runtime_error("cannot run: " + command);
  std::string output;
  char buffer[65536];
  for (size_t n; (n = fread(buffer, 1, sizeof buffer, pipe.get())) > 0;) output.append(buffer, n);
  const int status = pclose(pipe.release());
  if (status != 0) throw std::runtime_error(fmt::format("oracle exited with status {}: {}", status, command));
  return json::parse(output);
}

std::string describe(const std::string& text) { return json(text).dump(); }

TEST(TokenizerOracle, NodeAndPackageAreInstalled) {
  const fs::path package = fs::path(SHARDLM_ORACLE_DIR) / "node_modules" / "@huggingface" / "tokenizers" / "package.json";
  ASSERT_NE(std::string(SHARDLM_NODE_EXECUTABLE), "node-not-found") << "node is not installed (apt-get install nodejs npm)";
  ASSERT_TRUE(fs::exists(package)) << "oracle package missing: run `npm ci --prefix tests/oracle`";
}

TEST(TokenizerOracle, IdsAndTextMatchTokenizersJs) {
  const fs::path package = fs::path(SHARDLM_ORACLE_DIR) / "node_modules" / "@huggingface" / "tokenizers" / "package.json";
  ASSERT_TRUE(fs::exists(package)) << "oracle package missing: run `npm ci --prefix tests/oracle`";
  const std::vector<fs::path> tokenizer_files = find_tokenizer_files();
  ASSERT_FALSE(tokenizer_files.empty()) << "no tokenizer.json under " << SHARDLM_FIXTURES_DIR << "/tokenizers";

  for (const fs::path& tokenizer_file : tokenizer_files) {
    SCOPED_TRACE(tokenizer_file.string());
    const std::string tokenizer_json = read_text(tokenizer_file);
    const Tokenizer tokenizer = Tokenizer::from_json(tokenizer_json, "", tokenizer_file.string());
    const json root = json::parse(tokenizer_json);
    std::vector<std::string> added_tokens;
    // tokenizers.js decodes an added token with normalized=true from its raw content, the Rust library
    // (and we) from its normalized content ("shardlm" vs "▁shardlm" under Prepend("▁")), so the text of
    // ids containing one is not compared; their ids still are.
    std::set<int32_t> ids_decoded_differently;
    for (const auto& token : root.value("added_tokens", json::array())) {
      added_tokens.push_back(token["content"]);
      if (!root.value("normalizer", json()).is_null() && token.value("normalized", false)) ids_decoded_differently.insert(token["id"].get<int32_t>());
    }

    const std::vector<std::string> strings = generate_strings(added_tokens, 20240601);
    const fs::path strings_file = fs::temp_directory_path() / fmt::format("shardlm_oracle_strings_{}.json", getpid());
    std::ofstream(strings_file, std::ios::binary) << json(strings).dump();
    json expected;
    ASSERT_NO_THROW(expected = run_oracle(tokenizer_file, strings_file));
    fs::remove(strings_file);
    ASSERT_EQ(expected["ids"].size(), strings.size());

    int n_mismatches = 0;
    for (size_t i = 0; i < strings.size(); ++i) {
      const auto ids = tokenizer.encode(strings[i], true);
      const auto ids_no_special = tokenizer.encode(strings[i], false);
      const auto expected_no_special = expected["ids_no_special"][i].get<std::vector<int32_t>>();
      const std::string decoded = tokenizer.decode(expected_no_special);
      const bool text_comparable = std::none_of(expected_no_special.begin(), expected_no_special.end(),
                                                [&](int32_t id) { return ids_decoded_differently.contains(id); });
      const bool same = ids == expected["ids"][i].get<std::vector<int32_t>>() && ids_no_special == expected_no_special &&
                        (!text_comparable || decoded == expected["decoded"][i].get<std::string>());
      if (same) continue;
      if (++n_mismatches <= kMismatchesShown) {
        ADD_FAILURE() << "text " << describe(strings[i]) << "\n  ours:   " << json(ids_no_special).dump() << " -> "
                      << describe(decoded) << "\n  oracle: " << expected["ids_no_special"][i].dump() << " -> "
                      << expected["decoded"][i].dump() << "\n  with special tokens ours " << json(ids).dump() << " oracle "
                      << expected["ids"][i].dump();
      }
    }
    EXPECT_EQ(n_mismatches, 0) << n_mismatches << " of " << strings.size() << " strings differ";
  }
}

}  // namespace
}  // namespace shardlm
