// Read-bandwidth probe: a parallel AVX2 sum over a buffer much larger than the caches, handed out
// in chunks like the decode matmul's weight rows, so a core slowed by other work on the host
// costs the probe what it costs the matmul.
#include "backend/cpu/read_bandwidth.h"

#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>

#include "core/error.h"

namespace shardlm::cpu {
namespace {

constexpr size_t kFloatsPerStep = 32;          // four 8-lane loads in flight per thread
constexpr size_t kStepsPerChunk = 16384;        // 2 MiB per chunk handed out
constexpr size_t kAlignment = size_t(2) << 20;  // whole huge pages where the kernel offers them

}  // namespace

void ReadBandwidthProbe::FreeDeleter::operator()(float* data) const { std::free(data); }

ReadBandwidthProbe::ReadBandwidthProbe(size_t bytes)
    : n_floats_(std::max(bytes, kAlignment) / kAlignment * kAlignment / sizeof(float)) {
  buffer_.reset(static_cast<float*>(std::aligned_alloc(kAlignment, n_floats_ * sizeof(float))));
  if (!buffer_) fail("cannot allocate {} bytes for the CPU read-bandwidth probe", n_floats_ * sizeof(float));
  float* data = buffer_.get();
  const int64_t n = int64_t(n_floats_);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) data[i] = 1.0f;  // every page exists before a pass is timed
}

double ReadBandwidthProbe::measure(int passes) const {
  const float* data = buffer_.get();
  const int64_t n_steps = int64_t(n_floats_ / kFloatsPerStep);
  double best = 0.0;
  volatile float sink = 0.0f;
  for (int pass = 0; pass < passes; ++pass) {
    const auto start = std::chrono::steady_clock::now();
    float total = 0.0f;
#pragma omp parallel reduction(+ : total)
    {
      __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
      __m256 acc2 = _mm256_setzero_ps(), acc3 = _mm256_setzero_ps();
#pragma omp for schedule(dynamic, kStepsPerChunk)
      for (int64_t step = 0; step < n_steps; ++step) {
        const float* at = data + size_t(step) * kFloatsPerStep;
        acc0 = _mm256_add_ps(acc0, _mm256_load_ps(at));
        acc1 = _mm256_add_ps(acc1, _mm256_load_ps(at + 8));
        acc2 = _mm256_add_ps(acc2, _mm256_load_ps(at + 16));
        acc3 = _mm256_add_ps(acc3, _mm256_load_ps(at + 24));
      }
      float lanes[8];
      _mm256_storeu_ps(lanes, _mm256_add_ps(_mm256_add_ps(acc0, acc1), _mm256_add_ps(acc2, acc3)));
      for (float lane : lanes) total += lane;
    }
    sink = total;
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    best = std::max(best, double(n_floats_ * sizeof(float)) / seconds / 1e9);
  }
  (void)sink;
  return best;
}

double measure_read_bandwidth() { return ReadBandwidthProbe().measure(); }

}  // namespace shardlm::cpu
