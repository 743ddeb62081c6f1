// Test support: an empty directory under the system's temporary directory, named for this process
// and `name`, removed with everything in it when the test process exits.
#pragma once

#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

namespace shardlm::test {

struct ScratchDirs {
  std::vector<std::filesystem::path> dirs;
  ~ScratchDirs() {
    for (const std::filesystem::path& dir : dirs) std::filesystem::remove_all(dir);
  }
};

inline std::filesystem::path scratch_dir(const std::string& name) {
  static ScratchDirs written;
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("shardlm-test-" + std::to_string(::getpid()) + "-" + name);
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  written.dirs.push_back(dir);
  return dir;
}

}  // namespace shardlm::test
