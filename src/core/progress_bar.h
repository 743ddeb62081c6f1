// A one-line progress bar for long loads, drawn on stderr only when stdout is a terminal (so logs
// and pipes stay clean).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace shardlm {

class ProgressBar {
 public:
  ProgressBar(std::string label, int64_t total);
  void advance(int64_t amount);
  void finish();

 private:
  void draw();
  std::string label_;
  int64_t total_;
  int64_t done_ = 0;
  int last_percent_ = -1;
  bool enabled_;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace shardlm
