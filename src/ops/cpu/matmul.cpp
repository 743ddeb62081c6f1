// CPU GEMM for activations (f32) times stored weights (f32/f16/bf16), multi-threaded with OpenMP.
// Threads split the weight rows, so each weight byte is read once per call: decode (m = 1..batch)
// is bound by memory bandwidth, and that is the figure we optimise for. Each block of weight rows
// is widened to f32 once into a small per-thread buffer (it stays in L1/L2) and then reused by every
// activation row, so prefill does not pay the conversion m times. Decode (one or two rows) widens in
// registers instead, inside the dot product: the weights are then read exactly once, from memory.
#include "ops/cpu/matmul.h"

#include <immintrin.h>

#include <algorithm>
#include <type_traits>
#include <vector>

namespace shardlm::cpu {
namespace {

constexpr int kWeightRowsPerBlock = 4;
// Weight rows per chunk handed to a decode thread: big enough that handing chunks out costs nothing
// next to streaming them (512 KiB of bf16 at 4096 columns), small enough that the large projections
// balance (Llama-3-8B's gate and up: 224 chunks for 16 threads).
constexpr int kDirectRowsPerChunk = 64;

// Weights as stored: f32, or the 16-bit patterns of bf16/f16.
template <DType kDtype>
using WeightElement = std::conditional_t<kDtype == DType::F32, float, uint16_t>;

// 8 weights as f32 lanes (16-bit dtypes widened in registers), and one weight.
template <DType kDtype>
inline __m256 load8(const WeightElement<kDtype>* source) {
  if constexpr (kDtype == DType::F32) {
    return _mm256_loadu_ps(source);
  } else {
    const __m128i half = _mm_loadu_si128(reinterpret_cast<const __m128i*>(source));
    if constexpr (kDtype == DType::BF16) return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(half), 16));
    else return _mm256_cvtph_ps(half);
  }
}

template <DType kDtype>
inline float load1(WeightElement<kDtype> value) {
  if constexpr (kDtype == DType::F32) return value;
  else if constexpr (kDtype == DType::BF16) return bf16_to_f32(value);
  else return f16_to_f32(value);
}

// Widens n 16-bit weights into `out`, 8 lanes at a time.
template <DType kDtype>
void widen_to_f32(const uint16_t* source, int64_t n, float* out) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(out + i, load8<kDtype>(source + i));
  for (; i < n; ++i) out[i] = load1<kDtype>(source[i]);
}

inline float horizontal_sum(__m256 v) {
  const __m128 sum4 = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 sum2 = _mm_add_ps(sum4, _mm_movehl_ps(sum4, sum4));
  const __m128 sum1 = _mm_add_ss(sum2, _mm_shuffle_ps(sum2, sum2, 1));
  return _mm_cvtss_f32(sum1);
}

// out[r][c] = dot(x_rows[r], w_rows[c]) over k, for R activation rows and C weight rows. Each
// weight vector is used as soon as it is loaded, so R * C accumulators + R activations + 1 weight
// must fit AVX2's 16 registers (R = 2, C = 4: 11; R = 1, C = 8: 10). With kPrefetchBytes > 0 every
// weight row is prefetched that far ahead, a cache line at a time: rows streamed from memory.
template <DType kDtype, int R, int C, int kPrefetchBytes = 0>
void dot_block(const float* const* x_rows, const WeightElement<kDtype>* const* w_rows, int64_t k, float out[R][C]) {
  constexpr int64_t kElementsPerLine = 64 / sizeof(WeightElement<kDtype>);
  __m256 acc[R][C];
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) acc[r][c] = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= k; i += 8) {
    __m256 x[R];
    for (int r = 0; r < R; ++r) x[r] = _mm256_loadu_ps(x_rows[r] + i);
    for (int c = 0; c < C; ++c) {
      if constexpr (kPrefetchBytes > 0)
        if (i % kElementsPerLine == 0)
          _mm_prefetch(reinterpret_cast<const char*>(w_rows[c] + i) + kPrefetchBytes, _MM_HINT_T0);
      const __m256 w = load8<kDtype>(w_rows[c] + i);
      for (int r = 0; r < R; ++r) acc[r][c] = _mm256_fmadd_ps(x[r], w, acc[r][c]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) {
      float sum = horizontal_sum(acc[r][c]);
      for (int64_t j = i; j < k; ++j) sum += x_rows[r][j] * load1<kDtype>(w_rows[c][j]);
      out[r][c] = sum;
    }
}

// Weight rows read side by side by one decode thread: more streams in flight per core. One
// activation row has registers for 8, two for 4.
template <int R>
constexpr int kDirectWeightRows = R == 1 ? 8 : 4;
// Prefetch distance for rows read straight from memory. On a 16-core GPU host (bf16, m = 1, 64
// rows per chunk) 8 rows prefetched 1 KiB ahead streamed 139 GB/s against 123 without prefetch and
// 114 for 4 rows without it; the sum-only read probe gave 130.
constexpr int kDirectPrefetchBytes = 1024;

// y[r][first + c] for R activation rows and C consecutive 16-bit weight rows, widened in registers.
template <DType kDtype, int R, int C>
void direct_block(const float* x, int64_t k, const uint16_t* const* w_rows, int64_t n, int64_t first, float* y) {
  const float* x_rows[R];
  for (int r = 0; r < R; ++r) x_rows[r] = x + r * k;
  float out[R][C];
  dot_block<kDtype, R, C, kDirectPrefetchBytes>(x_rows, w_rows, k, out);
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) y[r * n + first + c] = out[r][c];
}

template <DType kDtype, int R>
void direct_matmul(const float* x, const WeightView& w, float* y) {
  constexpr int kRows = kDirectWeightRows<R>;
  const int64_t n = w.rows, k = w.cols;
  const uint16_t* base = static_cast<const uint16_t*>(w.data);
  const int64_t n_blocks = (n + kRows - 1) / kRows;
  // Handed out in chunks rather than split evenly up front: on a shared host one core is often
  // slowed by other work, and an even split makes every call wait for it (16 threads of a GPU
  // host streamed 100 GB/s split evenly, 120 GB/s in chunks).
#pragma omp parallel for schedule(dynamic, kDirectRowsPerChunk / kRows)
  for (int64_t block = 0; block < n_blocks; ++block) {
    const int64_t first = block * kRows;
    const int64_t count = std::min<int64_t>(kRows, n - first);
    const uint16_t* w_rows[kRows];
    for (int64_t c = 0; c < count; ++c) w_rows[c] = base + (first + c) * w.stride();
    if (count == kRows) {
      direct_block<kDtype, R, kRows>(x, k, w_rows, n, first, y);
    } else {
      for (int64_t c = 0; c < count; ++c) direct_block<kDtype, R, 1>(x, k, w_rows + c, n, first + c, y);
    }
  }
}

// Multiplies every activation row by C consecutive (already widened) weight rows.
template <int C>
void multiply_weight_block(const float* x, int64_t m, int64_t k, const float* const* w_rows,
                           int64_t n, int64_t first_col, float* y) {
  int64_t row = 0;
  for (; row + 2 <= m; row += 2) {
    const float* x_rows[2] = {x + row * k, x + (row + 1) * k};
    float out[2][C];
    dot_block<DType::F32, 2, C>(x_rows, w_rows, k, out);
    for (int r = 0; r < 2; ++r)
      for (int c = 0; c < C; ++c) y[(row + r) * n + first_col + c] = out[r][c];
  }
  if (row < m) {
    const float* x_rows[1] = {x + row * k};
    float out[1][C];
    dot_block<DType::F32, 1, C>(x_rows, w_rows, k, out);
    for (int c = 0; c < C; ++c) y[row * n + first_col + c] = out[0][c];
  }
}

void matmul_widening_blocks(const float* x, int64_t m, const WeightView& w, float* y) {
  const int64_t n = w.rows;
  const int64_t k = w.cols;
  const int64_t n_blocks = (n + kWeightRowsPerBlock - 1) / kWeightRowsPerBlock;
  const size_t element_size = dtype_size(w.dtype);
  const char* w_bytes = static_cast<const char*>(w.data);

#pragma omp parallel
  {
    std::vector<float> widened(w.dtype == DType::F32 ? 0 : size_t(kWeightRowsPerBlock * k));
#pragma omp for schedule(static)
    for (int64_t block = 0; block < n_blocks; ++block) {
      const int64_t first = block * kWeightRowsPerBlock;
      const int64_t count = std::min<int64_t>(kWeightRowsPerBlock, n - first);
      const float* w_rows[kWeightRowsPerBlock];
      for (int64_t c = 0; c < count; ++c) {
        const void* source = w_bytes + size_t((first + c) * w.stride()) * element_size;
        if (w.dtype == DType::F32) {
          w_rows[c] = static_cast<const float*>(source);
        } else {
          const uint16_t* bits = static_cast<const uint16_t*>(source);
          if (w.dtype == DType::BF16) widen_to_f32<DType::BF16>(bits, k, widened.data() + c * k);
          else widen_to_f32<DType::F16>(bits, k, widened.data() + c * k);
          w_rows[c] = widened.data() + c * k;
        }
      }
      if (count == kWeightRowsPerBlock) {
        multiply_weight_block<kWeightRowsPerBlock>(x, m, k, w_rows, n, first, y);
      } else {
        for (int64_t c = 0; c < count; ++c) multiply_weight_block<1>(x, m, k, w_rows + c, n, first + c, y);
      }
    }
  }
}

}  // namespace

void matmul(const float* x, int64_t m, const WeightView& w, const WeightView& bias, float* y) {
  const int64_t n = w.rows;
  if (m == 1 && w.dtype == DType::BF16) direct_matmul<DType::BF16, 1>(x, w, y);
  else if (m == 2 && w.dtype == DType::BF16) direct_matmul<DType::BF16, 2>(x, w, y);
  else if (m == 1 && w.dtype == DType::F16) direct_matmul<DType::F16, 1>(x, w, y);
  else if (m == 2 && w.dtype == DType::F16) direct_matmul<DType::F16, 2>(x, w, y);
  else matmul_widening_blocks(x, m, w, y);
  if (bias.present()) {
    for (int64_t row = 0; row < m; ++row)
      for (int64_t col = 0; col < n; ++col) y[row * n + col] += bias.at(col);
  }
}

}  // namespace shardlm::cpu
