// Redraws with '\r' only when the whole percentage changes, so it costs nothing in the copy loop.
#include "core/progress_bar.h"

#include <fmt/core.h>
#include <unistd.h>

#include <cstdio>

namespace shardlm {

ProgressBar::ProgressBar(std::string label, int64_t total)
    : label_(std::move(label)), total_(total), enabled_(isatty(STDOUT_FILENO) != 0),
      start_(std::chrono::steady_clock::now()) {}

void ProgressBar::advance(int64_t amount) {
  done_ += amount;
  draw();
}

void ProgressBar::draw() {
  if (!enabled_ || total_ <= 0) return;
  const int percent = int(done_ * 100 / total_);
  if (percent == last_percent_) return;
  last_percent_ = percent;
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const int width = 40;
  const int filled = percent * width / 100;
  fmt::print(stderr, "\r{} [{}{}] {:3d}% {:.2f} GB {:.1f} GB/s", label_, std::string(size_t(filled), '#'),
             std::string(size_t(width - filled), ' '), percent, double(done_) / 1e9,
             seconds > 0 ? double(done_) / 1e9 / seconds : 0.0);
  std::fflush(stderr);
}

void ProgressBar::finish() {
  if (enabled_ && last_percent_ >= 0) fmt::print(stderr, "\n");
}

}  // namespace shardlm
