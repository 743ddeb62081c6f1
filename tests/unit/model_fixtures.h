// Test support: the reference model fixtures (tests/fixtures/models/*, each with reference.json
// written by scripts/reference/make_fixtures.py), for parameterised suites over all of them.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

namespace shardlm {

inline std::filesystem::path model_fixture_dir(const std::string& name) {
  return std::filesystem::path(SHARDLM_FIXTURES_DIR) / "models" / name;
}

// Every fixture directory holding a reference.json, sorted; empty if the folder is missing.
inline std::vector<std::string> model_fixture_names() {
  namespace fs = std::filesystem;
  std::vector<std::string> names;
  const fs::path root = fs::path(SHARDLM_FIXTURES_DIR) / "models";
  if (!fs::is_directory(root)) return names;
  for (const fs::directory_entry& entry : fs::directory_iterator(root))
    if (fs::exists(entry.path() / "reference.json")) names.push_back(entry.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

// GoogleTest parameter names allow no '-'.
inline std::string model_fixture_test_name(const ::testing::TestParamInfo<std::string>& info) {
  std::string name = info.param;
  std::replace(name.begin(), name.end(), '-', '_');
  return name;
}

}  // namespace shardlm
