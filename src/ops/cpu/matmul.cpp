// CPU GEMM for activations (f32) times stored weights (f32/f16/bf16), multi-threaded with OpenMP.
// Threads split the weight rows, so each weight byte is read once per call (once per tile of
// activation rows for a long prompt): decode (m = 1..batch) is bound by memory bandwidth, and that
// is the figure we optimise for. For three rows or more, each chunk of weight rows is widened to f32
// once into a small per-thread buffer and then reused by every activation row of a tile, so prefill
// does not pay the conversion m times. Decode (one or two rows) widens in registers instead, inside
// the dot product: the weights are then read exactly once, from memory. Every row's outputs are the
// same bits however many rows run beside it (each output is one accumulator over k in the same
// order, and nothing is built with -ffast-math), which the server's greedy results rely on. Several
// products can run as one group, in one parallel region (matmul_group).
#include "ops/cpu/matmul.h"

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <type_traits>
#include <vector>

namespace shardlm::cpu {
namespace {

// Weight rows a widened dot product takes at once, against three activation rows: 12 accumulators,
// 3 activations and 1 weight fill AVX2's 16 registers (two rows at a time, as decode takes them,
// left prefill 1.3-1.4x slower on the 2-core dev machine).
constexpr int kWeightRowsPerBlock = 4;
constexpr int kActivationRowsPerBlock = 3;
// Weight rows per chunk handed to a decode thread: big enough that handing chunks out costs nothing
// next to streaming them (512 KiB of bf16 at 4096 columns), small enough that the large projections
// balance (Llama-3-8B's gate and up: 224 chunks for 16 threads).
constexpr int kDirectRowsPerChunk = 64;
// Weight rows per chunk when blocks are widened first: each row serves every activation row of a
// tile, so a chunk is that many times the work of a decode chunk of its size.
constexpr int kWideningRowsPerChunk = 16;
// Activation rows a widening chunk takes at most (a multiple of kActivationRowsPerBlock): a long
// prompt's rows are tiled so that a tile's activations (4 MiB at 4096 columns) stay in the last-level
// cache while every chunk of weight rows goes by, instead of streaming all of them from memory again
// for each chunk of 16 weight rows. Tiles of 128 to 512 rows measured alike on the dev machine.
constexpr int64_t kActivationRowsPerTile = 85 * kActivationRowsPerBlock;

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
// must fit AVX2's 16 registers (R = 3, C = 4: 16; R = 2, C = 4: 11; R = 1, C = 8: 10). With
// kPrefetchBytes > 0 every weight row is prefetched that far ahead, a cache line at a time, and
// past its end into the same row of `next_rows` (the block this thread reads next, or nullptr):
// each row's stream then stays prefetched from one block into the next, where short rows (an
// expert's down projection has 1.5 KiB) would otherwise begin every block with misses.
template <DType kDtype, int R, int C, int kPrefetchBytes = 0>
void dot_block(const float* const* x_rows, const WeightElement<kDtype>* const* w_rows,
               const WeightElement<kDtype>* const* next_rows, int64_t k, float out[R][C]) {
  constexpr int64_t kElementsPerLine = 64 / sizeof(WeightElement<kDtype>);
  constexpr int64_t kPrefetchElements = kPrefetchBytes / int64_t(sizeof(WeightElement<kDtype>));
  __m256 acc[R][C];
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) acc[r][c] = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= k; i += 8) {
    __m256 x[R];
    for (int r = 0; r < R; ++r) x[r] = _mm256_loadu_ps(x_rows[r] + i);
    for (int c = 0; c < C; ++c) {
      if constexpr (kPrefetchBytes > 0)
        if (i % kElementsPerLine == 0) {
          const int64_t ahead = i + kPrefetchElements;
          // Rows shorter than the distance prefetch no further than the next row's end.
          const WeightElement<kDtype>* line = ahead < k                    ? w_rows[c] + ahead
                                              : next_rows && ahead - k < k ? next_rows[c] + (ahead - k)
                                                                           : nullptr;
          if (line) _mm_prefetch(reinterpret_cast<const char*>(line), _MM_HINT_T0);
        }
      const __m256 w = load8<kDtype>(w_rows[c] + i);
      for (int r = 0; r < R; ++r) acc[r][c] = _mm256_fmadd_ps(x[r], w, acc[r][c]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) {
      float sum = horizontal_sum(acc[r][c]);
      // Fused explicitly: left to the compiler (gnu++20 lets GCC contract a * b + c as it sees fit),
      // the instantiations rounded this tail differently, and a row's outputs depended on how many
      // rows ran beside it whenever k is not a multiple of 8.
      for (int64_t j = i; j < k; ++j) sum = std::fma(x_rows[r][j], load1<kDtype>(w_rows[c][j]), sum);
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

// y[r][first + c] for R activation rows and C consecutive 16-bit weight rows, widened in registers;
// next_rows: the C rows read after these, or nullptr.
template <DType kDtype, int R, int C>
void direct_block(const float* x, int64_t k, const uint16_t* const* w_rows, const uint16_t* const* next_rows,
                  int64_t n, int64_t first, float* y) {
  const float* x_rows[R];
  for (int r = 0; r < R; ++r) x_rows[r] = x + r * k;
  float out[R][C];
  dot_block<kDtype, R, C, kDirectPrefetchBytes>(x_rows, w_rows, next_rows, k, out);
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) y[r * n + first + c] = out[r][c];
}

// Weight rows [first, end) of one product, read straight from memory and widened in registers;
// `first` is a multiple of kDirectWeightRows<R>.
template <DType kDtype, int R>
void direct_rows(const float* x, const WeightView& w, float* y, int64_t first, int64_t end) {
  constexpr int kRows = kDirectWeightRows<R>;
  const int64_t n = w.rows, k = w.cols;
  const uint16_t* base = static_cast<const uint16_t*>(w.data);
  for (int64_t block = first; block < end; block += kRows) {
    const int64_t count = std::min<int64_t>(kRows, end - block);
    const uint16_t* w_rows[kRows];
    const uint16_t* next_rows[kRows];
    for (int64_t c = 0; c < count; ++c) w_rows[c] = base + (block + c) * w.stride();
    const bool next_whole = block + 2 * kRows <= end;
    if (next_whole)
      for (int64_t c = 0; c < kRows; ++c) next_rows[c] = base + (block + kRows + c) * w.stride();
    if (count == kRows) {
      direct_block<kDtype, R, kRows>(x, k, w_rows, next_whole ? next_rows : nullptr, n, block, y);
    } else {
      for (int64_t c = 0; c < count; ++c) direct_block<kDtype, R, 1>(x, k, w_rows + c, nullptr, n, block + c, y);
    }
  }
}

// y[row + r][first + c] for R activation rows from `row` against `count` (already widened) weight
// rows, kWeightRowsPerBlock at a time: the R rows' activations stay close while the weight rows go by.
template <int R>
void multiply_activation_rows(const float* x, int64_t row, const float* const* w_rows, int64_t count, int64_t k,
                              int64_t n, int64_t first, float* y) {
  const float* x_rows[R];
  for (int r = 0; r < R; ++r) x_rows[r] = x + (row + r) * k;
  float* y_rows[R];
  for (int r = 0; r < R; ++r) y_rows[r] = y + (row + r) * n + first;
  int64_t c = 0;
  for (; c + kWeightRowsPerBlock <= count; c += kWeightRowsPerBlock) {
    float out[R][kWeightRowsPerBlock];
    dot_block<DType::F32, R, kWeightRowsPerBlock>(x_rows, w_rows + c, nullptr, k, out);
    for (int r = 0; r < R; ++r)
      for (int j = 0; j < kWeightRowsPerBlock; ++j) y_rows[r][c + j] = out[r][j];
  }
  for (; c < count; ++c) {
    float out[R][1];
    dot_block<DType::F32, R, 1>(x_rows, w_rows + c, nullptr, k, out);
    for (int r = 0; r < R; ++r) y_rows[r][c] = out[r][0];
  }
}

// Weight rows [first, end) of one product (at most kWideningRowsPerChunk), widened to f32 once into
// `widened` (f32 weights are read in place), then multiplied by kActivationRowsPerBlock activation
// rows at a time (the last one or two rows apart). Those rows' activations are reused from L1/L2
// across the chunk's weight rows, and the chunk's widened rows (256 KiB at 4096 columns) from L2
// across all the tile's activation rows.
void widening_rows(const float* x, int64_t m, const WeightView& w, float* y, int64_t first, int64_t end,
                   float* widened) {
  const int64_t n = w.rows, k = w.cols, count = end - first;
  const size_t element_size = dtype_size(w.dtype);
  const char* w_bytes = static_cast<const char*>(w.data);
  const float* w_rows[kWideningRowsPerChunk];
  for (int64_t c = 0; c < count; ++c) {
    const void* source = w_bytes + size_t((first + c) * w.stride()) * element_size;
    if (w.dtype == DType::F32) {
      w_rows[c] = static_cast<const float*>(source);
    } else {
      const uint16_t* bits = static_cast<const uint16_t*>(source);
      if (w.dtype == DType::BF16) widen_to_f32<DType::BF16>(bits, k, widened + c * k);
      else widen_to_f32<DType::F16>(bits, k, widened + c * k);
      w_rows[c] = widened + c * k;
    }
  }
  static_assert(kActivationRowsPerBlock == 3, "the last rows below are one or two");
  int64_t row = 0;
  for (; row + kActivationRowsPerBlock <= m; row += kActivationRowsPerBlock)
    multiply_activation_rows<kActivationRowsPerBlock>(x, row, w_rows, count, k, n, first, y);
  if (m - row == 2) multiply_activation_rows<2>(x, row, w_rows, count, k, n, first, y);
  if (m - row == 1) multiply_activation_rows<1>(x, row, w_rows, count, k, n, first, y);
}

// The rows of one or two activation rows times 16-bit weights run through direct_rows; nullptr
// for the rest, which widen blocks of weights first.
using DirectRows = void (*)(const float* x, const WeightView& w, float* y, int64_t first, int64_t end);
DirectRows direct_kernel(int64_t m, DType dtype) {
  if (dtype == DType::BF16) return m == 1 ? direct_rows<DType::BF16, 1> : m == 2 ? direct_rows<DType::BF16, 2> : nullptr;
  if (dtype == DType::F16) return m == 1 ? direct_rows<DType::F16, 1> : m == 2 ? direct_rows<DType::F16, 2> : nullptr;
  return nullptr;
}

// A run of one product's weight rows times a run of its activation rows, handed to one thread.
struct RowChunk {
  int32_t problem;
  int64_t first, end;                  // weight rows (outputs)
  int64_t first_row = 0, end_row = 0;  // activation rows
};

}  // namespace

void matmul_group(std::span<const MatmulProblem> problems) {
  std::vector<RowChunk> chunks;
  std::vector<DirectRows> kernels(problems.size());
  int64_t widest_widened = 0;
  for (size_t i = 0; i < problems.size(); ++i) {
    const MatmulProblem& problem = problems[i];
    if (problem.m == 0) continue;
    kernels[i] = direct_kernel(problem.m, problem.w.dtype);
    if (!kernels[i] && problem.w.dtype != DType::F32) widest_widened = std::max(widest_widened, problem.w.cols);
    const int64_t rows_per_chunk = kernels[i] ? kDirectRowsPerChunk : kWideningRowsPerChunk;
    const int64_t rows_per_tile = kernels[i] ? problem.m : kActivationRowsPerTile;  // decode: one tile
    for (int64_t first_row = 0; first_row < problem.m; first_row += rows_per_tile)
      for (int64_t first = 0; first < problem.w.rows; first += rows_per_chunk)
        chunks.push_back({int32_t(i), first, std::min(problem.w.rows, first + rows_per_chunk), first_row,
                          std::min(problem.m, first_row + rows_per_tile)});
  }
  // Handed out one at a time rather than split evenly up front: on a shared host one core is often
  // slowed by other work, and an even split makes every call wait for it (16 threads of a GPU
  // host streamed 100 GB/s split evenly, 120 GB/s in chunks).
#pragma omp parallel
  {
    // Written before it is read: not zeroed (it is up to 900 KiB a thread at 14,336 columns).
    const auto widened = std::make_unique_for_overwrite<float[]>(size_t(kWideningRowsPerChunk * widest_widened));
#pragma omp for schedule(dynamic, 1)
    for (size_t c = 0; c < chunks.size(); ++c) {
      const RowChunk& chunk = chunks[c];
      const MatmulProblem& problem = problems[size_t(chunk.problem)];
      if (const DirectRows kernel = kernels[size_t(chunk.problem)])
        kernel(problem.x, problem.w, problem.y, chunk.first, chunk.end);
      else
        widening_rows(problem.x + chunk.first_row * problem.w.cols, chunk.end_row - chunk.first_row, problem.w,
                      problem.y + chunk.first_row * problem.w.rows, chunk.first, chunk.end, widened.get());
    }
  }
  for (const MatmulProblem& problem : problems) {
    if (!problem.bias.present()) continue;
    const int64_t n = problem.w.rows;
    for (int64_t row = 0; row < problem.m; ++row)
      for (int64_t col = 0; col < n; ++col) problem.y[row * n + col] += problem.bias.at(col);
  }
}

void matmul(const float* x, int64_t m, const WeightView& w, const WeightView& bias, float* y) {
  const MatmulProblem problem{x, m, w, bias, y};
  matmul_group({&problem, 1});
}

}  // namespace shardlm::cpu
