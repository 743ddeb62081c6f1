// Linear layers on the GPU (GEMV for decode sizes, autotuned cuBLASLt otherwise) against a double
// precision product of the same bf16 operands, for bf16 and f32 outputs; the GEMV's rotary
// epilogue against the separate RoPE kernel; the GEMV holding W in shared memory against the one
// streaming it.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "ops/cuda/cublaslt_gemm.h"
#include "ops/cuda/gemv.h"
#include "ops/cuda/qkv_rope.h"
#include "ops/cuda/swiglu.h"
#include "core/dtype.h"
#include "cuda_test_support.h"

namespace shardlm::cuda {
namespace {

std::vector<uint16_t> random_bf16(size_t count, std::mt19937& rng) {
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<uint16_t> values(count);
  for (uint16_t& value : values) value = f32_to_bf16(normal(rng));
  return values;
}

template <typename T>
DeviceBuffer upload(const std::vector<T>& values) {
  DeviceBuffer buffer(values.size() * sizeof(T));
  CUDA_CHECK(cudaMemcpy(buffer.get(), values.data(), buffer.bytes(), cudaMemcpyHostToDevice));
  return buffer;
}

void check_linear(CublasLtGemm& gemm, int64_t m, int64_t n, int64_t k, GemmOutput output) {
  std::mt19937 rng(unsigned(m * 1000 + k));
  const std::vector<uint16_t> x = random_bf16(size_t(m * k), rng), w = random_bf16(size_t(n * k), rng);
  DeviceBuffer device_x(x.size() * 2), device_w(w.size() * 2), device_y(size_t(m * n) * 4);
  CUDA_CHECK(cudaMemcpy(device_x.get(), x.data(), device_x.bytes(), cudaMemcpyHostToDevice));
  CUDA_CHECK(cudaMemcpy(device_w.get(), w.data(), device_w.bytes(), cudaMemcpyHostToDevice));
  CUDA_CHECK(cudaMemset(device_y.get(), 0xff, device_y.bytes()));  // NaN poison: every output must be written
  gemm.linear(device_x.get<__nv_bfloat16>(), m, device_w.get<__nv_bfloat16>(), n, k, device_y.get(), output, nullptr);
  CUDA_CHECK(cudaDeviceSynchronize());

  std::vector<float> y(size_t(m * n));
  if (output == GemmOutput::F32) {
    CUDA_CHECK(cudaMemcpy(y.data(), device_y.get(), y.size() * 4, cudaMemcpyDeviceToHost));
  } else {
    std::vector<uint16_t> bits(y.size());
    CUDA_CHECK(cudaMemcpy(bits.data(), device_y.get(), bits.size() * 2, cudaMemcpyDeviceToHost));
    for (size_t i = 0; i < y.size(); ++i) y[i] = bf16_to_f32(bits[i]);
  }
  double error = 0, reference = 0;
  for (int64_t row = 0; row < m; ++row)
    for (int64_t col = 0; col < n; ++col) {
      double expected = 0;
      for (int64_t i = 0; i < k; ++i) expected += double(bf16_to_f32(x[size_t(row * k + i)])) * bf16_to_f32(w[size_t(col * k + i)]);
      const double actual = y[size_t(row * n + col)];
      ASSERT_TRUE(std::isfinite(actual)) << "unwritten or NaN output at (" << row << ", " << col << ")";
      error += (actual - expected) * (actual - expected);
      reference += expected * expected;
    }
  // f32 accumulation: far below 1e-3; a bf16 output adds its rounding (2^-9 relative).
  EXPECT_LT(std::sqrt(error / reference), output == GemmOutput::F32 ? 1e-5 : 5e-3) << "m=" << m << " n=" << n << " k=" << k;
}

void check_linear(int64_t m, int64_t n, int64_t k, GemmOutput output) {
  CublasLtGemm gemm;
  check_linear(gemm, m, n, k, output);
}

TEST(CudaLinear, DecodeSizesMatchOnGemvAndCublasLt) {
  SKIP_WITHOUT_CUDA_DEVICE();
  for (int64_t m : {1, 2, 5, 8})  // the GEMV up to 2 rows, cuBLASLt (autotuned) from 3
    for (GemmOutput output : {GemmOutput::BF16, GemmOutput::F32}) check_linear(m, 300, 264, output);
  check_linear(1, 37, 4096 + 8, GemmOutput::BF16);  // long rows: the 4-loads-in-flight loop and its tail
}

TEST(CudaLinear, LargerAndOddShapesUseCublasLt) {
  SKIP_WITHOUT_CUDA_DEVICE();
  check_linear(9, 300, 264, GemmOutput::BF16);
  check_linear(96, 256, 512, GemmOutput::BF16);  // autotuned
  check_linear(3, 50, 100, GemmOutput::F32);     // k not a multiple of 8: no GEMV
}

// A server's steps bring a new m almost every time: cuBLASLt's candidates are timed once per band
// of m (up to a power of two), and every m of the band computes correctly with that algorithm.
TEST(CudaLinear, CandidatesAreTimedOncePerBandOfRows) {
  SKIP_WITHOUT_CUDA_DEVICE();
  CublasLtGemm gemm;
  check_linear(gemm, 65, 256, 512, GemmOutput::BF16);
  if (gemm.timings() == 0) GTEST_SKIP() << "cuBLASLt offered one algorithm for m=65 n=256 k=512: nothing to time";
  for (int64_t m : {100, 128}) check_linear(gemm, m, 256, 512, GemmOutput::BF16);
  EXPECT_EQ(gemm.timings(), 1);
  check_linear(gemm, 129, 256, 512, GemmOutput::BF16);
  EXPECT_EQ(gemm.timings(), 2);
  check_linear(gemm, 100, 256, 512, GemmOutput::F32);  // another output type is another product
  EXPECT_EQ(gemm.timings(), 3);
}

// gate_up_swiglu against silu(x·gateᵀ)·(x·upᵀ) in double: one GEMV for m <= 2, GEMM + SwiGLU beyond.
void check_gate_up_swiglu(int64_t m, int64_t ff_dim, int64_t k) {
  std::mt19937 rng(unsigned(m + 17 * k));
  const std::vector<uint16_t> x = random_bf16(size_t(m * k), rng), w = random_bf16(size_t(2 * ff_dim * k), rng);
  DeviceBuffer device_x(x.size() * 2), device_w(w.size() * 2), scratch(size_t(m * 2 * ff_dim) * 2),
      device_y(size_t(m * ff_dim) * 2);
  CUDA_CHECK(cudaMemcpy(device_x.get(), x.data(), device_x.bytes(), cudaMemcpyHostToDevice));
  CUDA_CHECK(cudaMemcpy(device_w.get(), w.data(), device_w.bytes(), cudaMemcpyHostToDevice));
  CublasLtGemm gemm;
  gemm.gate_up_swiglu(device_x.get<__nv_bfloat16>(), m, device_w.get<__nv_bfloat16>(), ff_dim, k,
                      scratch.get<__nv_bfloat16>(), device_y.get<__nv_bfloat16>(), nullptr);
  std::vector<uint16_t> y(size_t(m * ff_dim));
  CUDA_CHECK(cudaMemcpy(y.data(), device_y.get(), y.size() * 2, cudaMemcpyDeviceToHost));
  double error = 0, reference = 0;
  for (int64_t row = 0; row < m; ++row)
    for (int64_t col = 0; col < ff_dim; ++col) {
      double gate = 0, up = 0;
      for (int64_t i = 0; i < k; ++i) {
        const double xi = bf16_to_f32(x[size_t(row * k + i)]);
        gate += xi * bf16_to_f32(w[size_t(col * k + i)]);
        up += xi * bf16_to_f32(w[size_t((ff_dim + col) * k + i)]);
      }
      const double expected = gate / (1.0 + std::exp(-gate)) * up;
      const double actual = bf16_to_f32(y[size_t(row * ff_dim + col)]);
      error += (actual - expected) * (actual - expected);
      reference += expected * expected;
    }
  // The GEMM path rounds gate and up to bf16 before SwiGLU.
  EXPECT_LT(std::sqrt(error / reference), 1e-2) << "m=" << m;
}

TEST(CudaLinear, GateUpSwiGluFusedAndUnfused) {
  SKIP_WITHOUT_CUDA_DEVICE();
  check_gate_up_swiglu(1, 200, 512);
  check_gate_up_swiglu(4, 200, 512);
  check_gate_up_swiglu(12, 200, 512);
  check_gate_up_swiglu(5, 196, 512);  // a width that is not a multiple of 8: SiLU·up element by element
}

// More rows than a grid is high (65,535), as a long prompt's pairs reach in a mixture-of-experts
// layer (rows x top_k): every row, the last ones too, gets its SiLU·up.
TEST(CudaLinear, SiluMulCoversRowsBeyondTheGridHeight) {
  SKIP_WITHOUT_CUDA_DEVICE();
  const int rows = 70000, ff_dim = 8;
  std::mt19937 rng(5);
  const std::vector<uint16_t> gate_up = random_bf16(size_t(rows) * 2 * ff_dim, rng);
  DeviceBuffer device_gate_up(gate_up.size() * 2), device_out(size_t(rows) * ff_dim * 2);
  CUDA_CHECK(cudaMemcpy(device_gate_up.get(), gate_up.data(), device_gate_up.bytes(), cudaMemcpyHostToDevice));
  CUDA_CHECK(cudaMemset(device_out.get(), 0xff, device_out.bytes()));
  launch_silu_mul(device_gate_up.get<__nv_bfloat16>(), rows, ff_dim, device_out.get<__nv_bfloat16>(), nullptr);
  std::vector<uint16_t> out(size_t(rows) * ff_dim);
  CUDA_CHECK(cudaMemcpy(out.data(), device_out.get(), out.size() * 2, cudaMemcpyDeviceToHost));
  for (int row = 0; row < rows; ++row)
    for (int col = 0; col < ff_dim; ++col) {
      const double gate = bf16_to_f32(gate_up[size_t(row) * 2 * ff_dim + size_t(col)]);
      const double up = bf16_to_f32(gate_up[size_t(row) * 2 * ff_dim + size_t(ff_dim + col)]);
      const double expected = gate / (1.0 + std::exp(-gate)) * up;
      ASSERT_NEAR(bf16_to_f32(out[size_t(row) * ff_dim + size_t(col)]), expected, 1e-2 * std::abs(expected) + 1e-3)
          << "row " << row << ", column " << col;
    }
}

// The decode GEMV's two fusions against double precision: an RMS-normalised f32 input (as the
// q/k/v, gate/up and LM-head projections read the residual stream; the normalised row is rounded
// to bf16 before the product, as Transformers rounds it), and a bf16 input whose product is added
// into an f32 residual (as o_proj and down_proj write it).
TEST(CudaLinear, GemvFusesRmsNormInputAndResidualAdd) {
  SKIP_WITHOUT_CUDA_DEVICE();
  const int64_t m = 2, n = 130, k = 264;
  std::mt19937 rng(11);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(size_t(m * k)), residual(size_t(m * n));
  for (float& value : x) value = normal(rng) * 4.0f;
  for (float& value : residual) value = normal(rng);
  const std::vector<uint16_t> gamma = random_bf16(size_t(k), rng), w = random_bf16(size_t(n * k), rng);
  const std::vector<uint16_t> x_bf16 = random_bf16(size_t(m * k), rng);
  DeviceBuffer device_x(x.size() * 4), device_gamma(gamma.size() * 2), device_w(w.size() * 2),
      device_y(residual.size() * 4), device_x_bf16(x_bf16.size() * 2), device_residual(residual.size() * 4);
  CUDA_CHECK(cudaMemcpy(device_x.get(), x.data(), device_x.bytes(), cudaMemcpyHostToDevice));
  CUDA_CHECK(cudaMemcpy(device_gamma.get(), gamma.data(), device_gamma.bytes(), cudaMemcpyHostToDevice));
  CUDA_CHECK(cudaMemcpy(device_w.get(), w.data(), device_w.bytes(), cudaMemcpyHostToDevice));
  CUDA_CHECK(cudaMemcpy(device_x_bf16.get(), x_bf16.data(), device_x_bf16.bytes(), cudaMemcpyHostToDevice));
  CUDA_CHECK(cudaMemcpy(device_residual.get(), residual.data(), device_residual.bytes(), cudaMemcpyHostToDevice));
  const float eps = 1e-5f;
  launch_gemv({device_x.get(), device_gamma.get<__nv_bfloat16>(), eps, m, device_w.get<__nv_bfloat16>(), n, k,
               device_y.get(), GemvOutput::F32},
              nullptr);
  launch_gemv({device_x_bf16.get(), nullptr, 0.0f, m, device_w.get<__nv_bfloat16>(), n, k, device_residual.get(),
               GemvOutput::ADD_TO_F32},
              nullptr);
  std::vector<float> normed_product(residual.size()), added(residual.size());
  CUDA_CHECK(cudaMemcpy(normed_product.data(), device_y.get(), normed_product.size() * 4, cudaMemcpyDeviceToHost));
  CUDA_CHECK(cudaMemcpy(added.data(), device_residual.get(), added.size() * 4, cudaMemcpyDeviceToHost));
  double normed_error = 0, normed_reference = 0, added_error = 0, added_reference = 0;
  for (int64_t row = 0; row < m; ++row) {
    double mean_square = 0;
    for (int64_t i = 0; i < k; ++i) mean_square += double(x[size_t(row * k + i)]) * x[size_t(row * k + i)] / double(k);
    const double inverse_rms = 1.0 / std::sqrt(mean_square + eps);
    for (int64_t col = 0; col < n; ++col) {
      double normed_dot = 0, plain_dot = 0;
      for (int64_t i = 0; i < k; ++i) {
        const double weight = bf16_to_f32(w[size_t(col * k + i)]);
        const float normed = float(double(x[size_t(row * k + i)]) * inverse_rms * bf16_to_f32(gamma[size_t(i)]));
        normed_dot += double(bf16_to_f32(f32_to_bf16(normed))) * weight;
        plain_dot += double(bf16_to_f32(x_bf16[size_t(row * k + i)])) * weight;
      }
      const size_t at = size_t(row * n + col);
      normed_error += (normed_product[at] - normed_dot) * (normed_product[at] - normed_dot);
      normed_reference += normed_dot * normed_dot;
      const double expected = residual[at] + plain_dot;
      added_error += (added[at] - expected) * (added[at] - expected);
      added_reference += expected * expected;
    }
  }
  // The kernel's f32 norm may round an element to the other neighbouring bf16 value now and then.
  EXPECT_LT(std::sqrt(normed_error / normed_reference), 1e-4);
  EXPECT_LT(std::sqrt(added_error / added_reference), 1e-5);
}

// Decode's fused q/k/v GEMV with the rotary epilogue writes the same q and KV-cache rows as a BF16
// GEMV followed by launch_qkv_rope (up to the bf16 rounding of q/k/v that the fused path skips):
// GQA heads, a bias, two rows at different positions and slots of a paged cache (slot 0's blocks
// after slot 1's), and nothing else of the cache.
TEST(CudaLinear, GemvRotaryEpilogueMatchesTheSeparateRopeKernel) {
  SKIP_WITHOUT_CUDA_DEVICE();
  const int m = 2, n_heads = 4, n_kv_heads = 2, head_dim = 16, k = 64, capacity = 12, slots_count = 2;
  const int q_dim = n_heads * head_dim, kv_dim = n_kv_heads * head_dim, qkv_dim = q_dim + 2 * kv_dim;
  std::mt19937 rng(5);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(size_t(m * k)), inv_freq(size_t(head_dim / 2));
  for (float& value : x) value = normal(rng);
  for (size_t i = 0; i < inv_freq.size(); ++i) inv_freq[i] = std::pow(10000.0f, -2.0f * float(i) / float(head_dim));
  const std::vector<uint16_t> gamma = random_bf16(size_t(k), rng), w = random_bf16(size_t(qkv_dim * k), rng),
                              bias = random_bf16(size_t(qkv_dim), rng),
                              cache_start = random_bf16(size_t(slots_count * capacity * kv_dim), rng);
  const std::vector<int32_t> positions = {5, 9}, slots = {1, 0};
  constexpr int kBlockShift = 2, kBlocksPerSlot = 3;  // 3 blocks of 4 positions: the capacity of 12
  const std::vector<int32_t> tables = {3, 4, 5, 0, 1, 2};
  auto cache_row = [&](int slot, int position) {
    return tables[size_t(slot * kBlocksPerSlot + (position >> kBlockShift))] * (1 << kBlockShift) +
           position % (1 << kBlockShift);
  };
  DeviceBuffer device_x = upload(x), device_gamma = upload(gamma), device_w = upload(w), device_bias = upload(bias),
               device_inv_freq = upload(inv_freq), device_positions = upload(positions), device_slots = upload(slots),
               device_tables = upload(tables);
  struct Outputs {
    std::vector<uint16_t> q, keys, values;
  };
  auto run = [&](bool fused) {
    DeviceBuffer qkv(size_t(m * qkv_dim) * 2), q(size_t(m * q_dim) * 2), keys = upload(cache_start),
        values = upload(cache_start);
    CUDA_CHECK(cudaMemset(q.get(), 0xff, q.bytes()));
    GemvParams p{device_x.get(), device_gamma.get<__nv_bfloat16>(), 1e-5f, m, device_w.get<__nv_bfloat16>(),
                 qkv_dim, k, qkv.get(), fused ? GemvOutput::QKV_ROPE : GemvOutput::BF16};
    p.rope = {qkv.get<__nv_bfloat16>(), device_bias.get<__nv_bfloat16>(), nullptr, nullptr, 0.0f,
              device_positions.get<int32_t>(), device_slots.get<int32_t>(), device_inv_freq.get<float>(), 1.0f, m,
              n_heads, n_kv_heads, head_dim, q.get<__nv_bfloat16>(), keys.get<__nv_bfloat16>(),
              values.get<__nv_bfloat16>(), PagedKv{device_tables.get<int32_t>(), kBlocksPerSlot, kBlockShift}};
    launch_gemv(p, nullptr);
    if (!fused) launch_qkv_rope(p.rope, nullptr);
    Outputs out{std::vector<uint16_t>(size_t(m * q_dim)), std::vector<uint16_t>(cache_start.size()),
                std::vector<uint16_t>(cache_start.size())};
    CUDA_CHECK(cudaMemcpy(out.q.data(), q.get(), q.bytes(), cudaMemcpyDeviceToHost));
    CUDA_CHECK(cudaMemcpy(out.keys.data(), keys.get(), keys.bytes(), cudaMemcpyDeviceToHost));
    CUDA_CHECK(cudaMemcpy(out.values.data(), values.get(), values.bytes(), cudaMemcpyDeviceToHost));
    return out;
  };
  const Outputs separate = run(false), fused = run(true);
  auto expect_close = [](const std::vector<uint16_t>& actual, const std::vector<uint16_t>& expected, const char* what) {
    double error = 0, reference = 0;
    for (size_t i = 0; i < actual.size(); ++i) {
      const double difference = double(bf16_to_f32(actual[i])) - bf16_to_f32(expected[i]);
      error += difference * difference;
      reference += double(bf16_to_f32(expected[i])) * bf16_to_f32(expected[i]);
    }
    EXPECT_LT(std::sqrt(error / reference), 1e-2) << what;
  };
  expect_close(fused.q, separate.q, "q");
  expect_close(fused.keys, separate.keys, "k cache");
  expect_close(fused.values, separate.values, "v cache");
  // Only the rows' own (slot, position) entries change.
  for (int slot = 0; slot < slots_count; ++slot)
    for (int position = 0; position < capacity; ++position) {
      const bool written = (slot == 1 && position == 5) || (slot == 0 && position == 9);
      const size_t at = size_t(cache_row(slot, position) * kv_dim);
      const bool unchanged = std::equal(cache_start.begin() + at, cache_start.begin() + at + kv_dim, fused.keys.begin() + at);
      EXPECT_EQ(unchanged, !written) << "slot " << slot << " position " << position;
    }
}

// The one-row GEMV that holds W in shared memory sums each column as the streaming one does, so
// both give the same bits, in each form the model asks for: f32 logits of a normalised input (also
// storing the normalised row), the residual add, bf16 (for a column count that leaves the last
// block short too); and a W too large for shared memory falls back to the streaming kernel.
TEST(CudaLinear, GemvWithWeightsInSharedMemoryGivesTheSameBits) {
  SKIP_WITHOUT_CUDA_DEVICE();
  struct Case {
    int64_t n, k;
    GemvOutput output;
    bool normed, held;
  };
  for (const Case& c : {Case{128, 2048, GemvOutput::F32, true, true}, Case{2048, 4096, GemvOutput::ADD_TO_F32, false, true},
                        Case{1001, 1024, GemvOutput::BF16, false, true}, Case{5120, 2048, GemvOutput::BF16, false, true},
                        Case{40000, 4096, GemvOutput::F32, true, false}}) {
    std::mt19937 rng(unsigned(c.n + c.k));
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::vector<float> x(size_t(c.k)), residual(size_t(c.n));
    for (float& value : x) value = normal(rng);
    for (float& value : residual) value = normal(rng);
    const std::vector<uint16_t> x_bf16 = random_bf16(size_t(c.k), rng), gamma = random_bf16(size_t(c.k), rng),
                                w = random_bf16(size_t(c.n * c.k), rng);
    DeviceBuffer device_x = c.normed ? upload(x) : upload(x_bf16), device_gamma = upload(gamma), device_w = upload(w);
    const size_t y_bytes = size_t(c.n) * (c.output == GemvOutput::BF16 ? 2 : 4);
    struct Result {
      std::vector<uint8_t> y, normed;
    };
    auto run = [&](bool in_shared) {
      DeviceBuffer y = c.output == GemvOutput::ADD_TO_F32 ? upload(residual) : DeviceBuffer(y_bytes),
                   normed(size_t(c.k) * 2);
      if (c.output != GemvOutput::ADD_TO_F32) CUDA_CHECK(cudaMemset(y.get(), 0xff, y.bytes()));  // NaN poison
      CUDA_CHECK(cudaMemset(normed.get(), 0xff, normed.bytes()));
      GemvParams p{device_x.get(), c.normed ? device_gamma.get<__nv_bfloat16>() : nullptr, 1e-5f, 1,
                   device_w.get<__nv_bfloat16>(), c.n, c.k, y.get(), c.output};
      if (c.normed) p.normed_out = normed.get<__nv_bfloat16>();
      p.weights_in_shared = in_shared;
      // The held shapes are sized for an H100 or H200 (132 multiprocessors, 227 KB a block).
      if (in_shared) EXPECT_EQ(gemv_holds_weights_in_shared(p), c.held) << "n " << c.n;
      launch_gemv(p, nullptr);
      Result result{std::vector<uint8_t>(y_bytes), std::vector<uint8_t>(normed.bytes())};
      CUDA_CHECK(cudaMemcpy(result.y.data(), y.get(), y_bytes, cudaMemcpyDeviceToHost));
      CUDA_CHECK(cudaMemcpy(result.normed.data(), normed.get(), normed.bytes(), cudaMemcpyDeviceToHost));
      return result;
    };
    const Result streamed = run(false), held = run(true);
    EXPECT_TRUE(held.y == streamed.y) << "n " << c.n << " k " << c.k;
    EXPECT_TRUE(held.normed == streamed.normed) << "n " << c.n << " k " << c.k;
    // Alike could mean both left the NaN poison: every output, and the normalised row, was written.
    std::vector<float> y(size_t(c.n));
    if (c.output == GemvOutput::BF16) {
      std::vector<uint16_t> bits(y.size());
      std::memcpy(bits.data(), held.y.data(), y_bytes);
      std::transform(bits.begin(), bits.end(), y.begin(), bf16_to_f32);
    } else {
      std::memcpy(y.data(), held.y.data(), y_bytes);
    }
    EXPECT_TRUE(std::all_of(y.begin(), y.end(), [](float value) { return std::isfinite(value); })) << "n " << c.n;
    if (c.normed) {
      std::vector<uint16_t> normed(size_t(c.k));
      std::memcpy(normed.data(), held.normed.data(), held.normed.size());
      EXPECT_TRUE(std::all_of(normed.begin(), normed.end(), [](uint16_t bits) { return std::isfinite(bf16_to_f32(bits)); }))
          << "n " << c.n;
    }
  }
}

}  // namespace
}  // namespace shardlm::cuda
