// Reference fixtures from Transformers: every tests/fixtures/tokenizers/<name>/ directory with an
// expected.json holds, for each case, tokenizer(text)["input_ids"], the ids without special tokens and
// both decodes, produced by Transformers 5 from the tokenizer.json and tokenizer_config.json beside it.
// Our Tokenizer::from_dir must reproduce all four. A directory without any fixture is a failure.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <vector>

#include <nlohmann/json.hpp>

#include "tokenizer/tokenizer.h"

namespace shardlm {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr int kMismatchesShown = 8;

std::vector<fs::path> fixture_dirs() {
  std::vector<fs::path> dirs;
  for (const auto& entry : fs::directory_iterator(fs::path(SHARDLM_FIXTURES_DIR) / "tokenizers")) {
    if (entry.is_directory() && fs::exists(entry.path() / "expected.json")) dirs.push_back(entry.path());
  }
  std::sort(dirs.begin(), dirs.end());
  return dirs;
}

TEST(TokenizerFixtures, ReferenceFixturesArePresent) {
  EXPECT_FALSE(fixture_dirs().empty()) << "no tests/fixtures/tokenizers/*/expected.json";
}

class TokenizerFixture : public testing::TestWithParam<fs::path> {};

TEST_P(TokenizerFixture, MatchesTransformers) {
  const fs::path dir = GetParam();
  const Tokenizer tokenizer = Tokenizer::from_dir(dir);
  std::ifstream file(dir / "expected.json");
  const json expected = json::parse(file);
  const json& cases = expected.at("cases");
  ASSERT_FALSE(cases.empty()) << dir << "/expected.json has no cases";

  int n_mismatches = 0;
  for (const json& c : cases) {
    const std::string text = c.at("text");
    const auto expected_ids = c.at("ids").get<std::vector<int32_t>>();
    const auto expected_no_special = c.at("ids_no_special").get<std::vector<int32_t>>();
    const auto ids = tokenizer.encode(text, true);
    const auto ids_no_special = tokenizer.encode(text, false);
    const std::string decoded = tokenizer.decode(expected_no_special, false);
    const std::string decoded_skip_special = tokenizer.decode(expected_ids, true);
    const bool same = ids == expected_ids && ids_no_special == expected_no_special && decoded == c.at("decoded").get<std::string>() &&
                      decoded_skip_special == c.at("decoded_skip_special").get<std::string>();
    if (same) continue;
    if (++n_mismatches <= kMismatchesShown) {
      ADD_FAILURE() << "text " << json(text).dump() << "\n  ids:            ours " << json(ids).dump() << " expected "
                    << c["ids"].dump() << "\n  ids_no_special: ours " << json(ids_no_special).dump() << " expected "
                    << c["ids_no_special"].dump() << "\n  decoded: ours " << json(decoded).dump() << " expected "
                    << c["decoded"].dump() << "\n  decoded_skip_special: ours " << json(decoded_skip_special).dump()
                    << " expected " << c["decoded_skip_special"].dump();
    }
  }
  EXPECT_EQ(n_mismatches, 0) << n_mismatches << " of " << cases.size() << " cases differ in " << dir;
}

INSTANTIATE_TEST_SUITE_P(Reference, TokenizerFixture, testing::ValuesIn(fixture_dirs()),
                         [](const testing::TestParamInfo<fs::path>& info) {
                           std::string name = info.param.filename().string();
                           for (char& c : name) {
                             if (!isalnum(static_cast<unsigned char>(c))) c = '_';
                           }
                           return name;
                         });

}  // namespace
}  // namespace shardlm
