// Read-bandwidth probe: a parallel AVX2 sum over a buffer much larger than the caches. Taking the
// best of a few passes filters out page-fault and scheduling noise from the first touch.
#include "backend/cpu/read_bandwidth.h"

#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <vector>

namespace shardlm::cpu {

double measure_read_bandwidth(size_t bytes) {
  const size_t n = bytes / sizeof(float);
  std::vector<float> buffer(n, 1.0f);
  double best = 0.0;
  volatile float sink = 0.0f;
  for (int pass = 0; pass < 5; ++pass) {
    const auto start = std::chrono::steady_clock::now();
    float total = 0.0f;
#pragma omp parallel reduction(+ : total)
    {
      __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
#pragma omp for schedule(static)
      for (size_t i = 0; i < n; i += 16) {
        acc0 = _mm256_add_ps(acc0, _mm256_loadu_ps(buffer.data() + i));
        acc1 = _mm256_add_ps(acc1, _mm256_loadu_ps(buffer.data() + i + 8));
      }
      float lanes[8];
      _mm256_storeu_ps(lanes, _mm256_add_ps(acc0, acc1));
      for (float lane : lanes) total += lane;
    }
    sink = total;
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    best = std::max(best, double(n / 16 * 16 * sizeof(float)) / seconds / 1e9);
  }
  (void)sink;
  return best;
}

}  // namespace shardlm::cpu
