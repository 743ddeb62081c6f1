// CPU kernels against naive double-precision references, for every weight dtype.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "ops/cpu/attention.h"
#include "ops/cpu/matmul.h"
#include "ops/cpu/rmsnorm.h"
#include "ops/cpu/rope.h"
#include "core/dtype.h"

namespace shardlm {
namespace {

// Weights of one dtype plus their exact f32 values (what the kernel should compute with).
struct TestWeights {
  std::vector<float> f32;
  std::vector<uint16_t> half_bits;
  WeightView view;
};

TestWeights make_weights(DType dtype, int64_t rows, int64_t cols, std::mt19937& rng) {
  std::normal_distribution<float> normal(0.0f, 1.0f);
  TestWeights weights;
  weights.f32.resize(size_t(rows * cols));
  for (float& value : weights.f32) value = normal(rng);
  if (dtype != DType::F32) {
    weights.half_bits.resize(weights.f32.size());
    for (size_t i = 0; i < weights.f32.size(); ++i) {
      weights.half_bits[i] = dtype == DType::BF16 ? f32_to_bf16(weights.f32[i]) : f32_to_f16(weights.f32[i]);
      weights.f32[i] = dtype == DType::BF16 ? bf16_to_f32(weights.half_bits[i]) : f16_to_f32(weights.half_bits[i]);
    }
  }
  weights.view = {dtype, dtype == DType::F32 ? static_cast<const void*>(weights.f32.data()) : weights.half_bits.data(),
                  rows, cols};
  return weights;
}

class MatmulTest : public ::testing::TestWithParam<DType> {};

TEST_P(MatmulTest, MatchesNaiveProductForOddShapes) {
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (auto [m, n, k] : {std::tuple{1, 1, 1}, {1, 37, 29}, {2, 8, 16}, {5, 13, 70}, {17, 64, 96}, {3, 5, 257}, {1, 9, 300}, {2, 7, 259},
                        {1, 203, 40}, {2, 131, 24},  // several chunks of decode rows
                        {600, 21, 24}}) {              // activation rows in tiles of 255, the last part-full
    const TestWeights w = make_weights(GetParam(), n, k, rng);
    const TestWeights bias = make_weights(DType::F32, 1, n, rng);
    std::vector<float> x(size_t(m * k));
    for (float& value : x) value = normal(rng);
    std::vector<float> y(size_t(m * n), -1.0f);
    cpu::matmul(x.data(), m, w.view, bias.view, y.data());
    for (int row = 0; row < m; ++row) {
      for (int col = 0; col < n; ++col) {
        double expected = bias.f32[size_t(col)];
        for (int i = 0; i < k; ++i) expected += double(x[size_t(row * k + i)]) * w.f32[size_t(col * k + i)];
        EXPECT_NEAR(y[size_t(row * n + col)], expected, 1e-4 * std::sqrt(double(k)) + 1e-5)
            << "m=" << m << " n=" << n << " k=" << k << " at (" << row << ", " << col << ")";
      }
    }
  }
}

// A group runs its products together, split into chunks across threads; each result must be
// exactly matmul's for that product alone, whatever shares the group (other shapes, an f32 product
// beside 16-bit ones, a product of no rows, two products over the same rows).
TEST_P(MatmulTest, GroupGivesEachProductWhatItGetsAlone) {
  std::mt19937 rng(11);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  struct Shape {
    int64_t m, n, k;
    DType dtype;
    bool bias;
  };
  const std::vector<Shape> shapes = {{1, 203, 40, GetParam(), false}, {1, 131, 40, GetParam(), true},
                                     {2, 70, 24, GetParam(), false},  {3, 37, 259, GetParam(), true},
                                     {17, 64, 96, GetParam(), false}, {0, 50, 8, GetParam(), false},
                                     {5, 19, 300, DType::F32, true}};
  std::vector<TestWeights> weights, biases;
  std::vector<std::vector<float>> inputs, alone, grouped;
  std::vector<cpu::MatmulProblem> products;
  for (const Shape& shape : shapes) {
    weights.push_back(make_weights(shape.dtype, shape.n, shape.k, rng));
    biases.push_back(make_weights(DType::F32, 1, shape.n, rng));
    inputs.emplace_back(size_t(shape.m * shape.k));
    for (float& value : inputs.back()) value = normal(rng);
    alone.emplace_back(size_t(shape.m * shape.n), -1.0f);
    grouped.emplace_back(size_t(shape.m * shape.n) + 1, -2.0f);  // one more: nothing past y is written
  }
  for (size_t i = 0; i < shapes.size(); ++i) {
    const WeightView bias = shapes[i].bias ? biases[i].view : WeightView{};
    // The second product reads the first one's rows, as an expert's gate and up projections do.
    const float* x = i == 1 ? inputs[0].data() : inputs[i].data();
    cpu::matmul(x, shapes[i].m, weights[i].view, bias, alone[i].data());
    products.push_back({x, shapes[i].m, weights[i].view, bias, grouped[i].data()});
  }
  cpu::matmul_group(products);
  for (size_t i = 0; i < shapes.size(); ++i) {
    EXPECT_EQ(grouped[i].back(), -2.0f) << "product " << i << " wrote past its output";
    grouped[i].pop_back();
    EXPECT_EQ(grouped[i], alone[i]) << "product " << i << " (m=" << shapes[i].m << " n=" << shapes[i].n << ")";
  }
}

// A row's outputs do not depend on the rows beside it: one row alone (the decode kernels for 16-bit
// weights), two, or 260 (widened blocks of three rows, then a tile of five: three and two). The
// server relies on it: a greedy request returns what it returns alone, whatever else shares its
// steps.
TEST_P(MatmulTest, EachRowGetsTheSameBitsWhateverTheRowsBesideIt) {
  std::mt19937 rng(11);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  constexpr int64_t kRows = 260, kN = 45, kK = 263;  // n past a chunk of 16, k past whole 8-lane steps
  const TestWeights w = make_weights(GetParam(), kN, kK, rng);
  std::vector<float> x(size_t(kRows * kK));
  for (float& value : x) value = normal(rng);
  std::vector<float> together(size_t(kRows * kN));
  cpu::matmul(x.data(), kRows, w.view, WeightView{}, together.data());
  for (int64_t rows : {1, 2}) {
    for (int64_t first = 0; first + rows <= kRows; first += rows) {
      std::vector<float> apart(size_t(rows * kN));
      cpu::matmul(x.data() + first * kK, rows, w.view, WeightView{}, apart.data());
      const std::vector<float> expected(together.begin() + first * kN, together.begin() + (first + rows) * kN);
      EXPECT_EQ(apart, expected) << rows << " rows from row " << first;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(AllWeightDtypes, MatmulTest, ::testing::Values(DType::F32, DType::F16, DType::BF16),
                         [](const auto& info) { return std::string(dtype_name(info.param)); });

TEST(RmsNorm, MatchesDefinition) {
  std::mt19937 rng(3);
  const TestWeights gamma = make_weights(DType::BF16, 1, 10, rng);
  std::vector<float> x = {1, -2, 3, -4, 5, -6, 7, -8, 9, -10, 0.5f, 0.25f, 0, 0, 0, 0, 0, 0, 0, 1};
  std::vector<float> out(x.size());
  cpu::rmsnorm(x.data(), 2, 10, gamma.view, 1e-5f, out.data());
  for (int row = 0; row < 2; ++row) {
    double mean_square = 0;
    for (int i = 0; i < 10; ++i) mean_square += double(x[size_t(row * 10 + i)]) * x[size_t(row * 10 + i)] / 10.0;
    for (int i = 0; i < 10; ++i)
      EXPECT_NEAR(out[size_t(row * 10 + i)], gamma.f32[size_t(i)] * x[size_t(row * 10 + i)] / std::sqrt(mean_square + 1e-5), 1e-5);
  }
}

TEST(Rope, RotatesPairsHalfApartAndKeepsNorm) {
  std::vector<float> x = {1, 2, 3, 4, 5, 6, 7, 8};  // one head, head_dim 8
  const std::vector<float> inv_freq = {1.0f, 0.1f, 0.01f, 0.001f};
  std::vector<float> rotated = x;
  cpu::apply_rope(rotated.data(), 1, 8, 3, inv_freq, 1.0f);
  for (int i = 0; i < 4; ++i) {
    const double angle = 3.0 * inv_freq[size_t(i)];
    EXPECT_NEAR(rotated[size_t(i)], x[size_t(i)] * std::cos(angle) - x[size_t(i + 4)] * std::sin(angle), 1e-5);
    EXPECT_NEAR(rotated[size_t(i + 4)], x[size_t(i + 4)] * std::cos(angle) + x[size_t(i)] * std::sin(angle), 1e-5);
  }
  std::vector<float> at_zero = x;
  cpu::apply_rope(at_zero.data(), 1, 8, 0, inv_freq, 1.0f);
  EXPECT_EQ(at_zero, x);
}

TEST(Attention, SingleVisiblePositionReturnsItsValue) {
  const cpu::AttentionShape shape{2, 1, 2, 1.0f};  // both query heads share KV head 0 (GQA)
  const std::vector<float> q = {1, 0, 0, 1};
  const std::vector<float> keys = {1, 1, 5, 5};
  const std::vector<float> values = {3, 4, 7, 8};
  const int32_t one_block[] = {0};
  const cpu::PagedRows key_rows{keys.data(), one_block, 2, 2}, value_rows{values.data(), one_block, 2, 2};
  std::vector<float> out(4), scores(4);
  cpu::attend_heads(q.data(), key_rows, value_rows, 1, 1, shape, 0, 2, out.data(), scores.data());
  EXPECT_EQ(out, (std::vector<float>{7, 8, 7, 8}));
  cpu::attend_heads(q.data(), key_rows, value_rows, 0, 1, shape, 0, 2, out.data(), scores.data());
  // Each head's scores are softmax([1, 5]), weighting the two value rows.
  const double w1 = std::exp(5.0) / (std::exp(1.0) + std::exp(5.0));
  for (int head = 0; head < 2; ++head) {
    EXPECT_NEAR(out[size_t(2 * head)], 3 * (1 - w1) + 7 * w1, 1e-5);
    EXPECT_NEAR(out[size_t(2 * head + 1)], 4 * (1 - w1) + 8 * w1, 1e-5);
  }
}

TEST(Attention, ManyPositionsMatchTheDefinition) {
  // 6 query heads over 2 KV heads of 24 dims; windows whose lengths are and are not multiples of
  // the kernel's four value rows per pass, starting at 0 and later (sliding window). The positions
  // live in blocks of 8 in a shuffled order, as a paged cache holds them.
  std::mt19937 rng(11);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  const cpu::AttentionShape shape{6, 2, 24, 0.2f};
  const int64_t n_positions = 40, kv_stride = 2 * 24;
  std::vector<float> q(6 * 24), keys(size_t(n_positions * kv_stride)), values(keys.size());
  for (std::vector<float>* data : {&q, &keys, &values})
    for (float& value : *data) value = normal(rng);
  const int32_t blocks[] = {3, 0, 4, 1, 2};
  std::vector<float> key_store(keys.size()), value_store(values.size());
  for (int64_t p = 0; p < n_positions; ++p) {
    const int64_t at = (int64_t(blocks[p / 8]) * 8 + p % 8) * kv_stride;
    std::copy_n(keys.begin() + p * kv_stride, kv_stride, key_store.begin() + at);
    std::copy_n(values.begin() + p * kv_stride, kv_stride, value_store.begin() + at);
  }
  const cpu::PagedRows key_rows{key_store.data(), blocks, 8, kv_stride};
  const cpu::PagedRows value_rows{value_store.data(), blocks, 8, kv_stride};
  for (auto [first, last] : {std::pair<int64_t, int64_t>{0, 39}, {0, 37}, {5, 26}, {9, 11}, {13, 13}}) {
    std::vector<float> out(q.size(), -1.0f);
    std::vector<float> scores(static_cast<size_t>(3 * (last + 1)));
    // KV head 0's group whole, KV head 1's in two parts of one and two heads.
    cpu::attend_heads(q.data(), key_rows, value_rows, first, last, shape, 0, 3, out.data(), scores.data());
    cpu::attend_heads(q.data(), key_rows, value_rows, first, last, shape, 3, 4, out.data(), scores.data());
    cpu::attend_heads(q.data(), key_rows, value_rows, first, last, shape, 4, 6, out.data(), scores.data());
    for (int head = 0; head < 6; ++head) {
      const int64_t kv = head / 3 * 24;
      std::vector<double> weights;
      double max_score = -1e300, sum = 0;
      for (int64_t p = first; p <= last; ++p) {
        double dot = 0;
        for (int i = 0; i < 24; ++i) dot += double(q[size_t(head * 24 + i)]) * keys[size_t(p * kv_stride + kv + i)];
        weights.push_back(dot * shape.scale);
        max_score = std::max(max_score, weights.back());
      }
      for (double& w : weights) sum += (w = std::exp(w - max_score));
      for (int i = 0; i < 24; ++i) {
        double expected = 0;
        for (int64_t p = first; p <= last; ++p)
          expected += weights[size_t(p - first)] / sum * values[size_t(p * kv_stride + kv + i)];
        EXPECT_NEAR(out[size_t(head * 24 + i)], expected, 1e-5)
            << "positions " << first << ".." << last << ", head " << head << ", element " << i;
      }
    }
  }
}

TEST(Dtype, HalfConversionsRoundTripAndRound) {
  for (float value : {0.0f, 1.0f, -2.5f, 65504.0f, 6.1035156e-05f, 5.9604645e-08f, 0.1f}) {
    EXPECT_EQ(f16_to_f32(f32_to_f16(value)), f16_to_f32(f32_to_f16(f16_to_f32(f32_to_f16(value)))));
    EXPECT_NEAR(f16_to_f32(f32_to_f16(value)), value, std::fabs(value) * 1e-3 + 6e-8);
    EXPECT_NEAR(bf16_to_f32(f32_to_bf16(value)), value, std::fabs(value) * 8e-3);
  }
  EXPECT_EQ(f32_to_bf16(1.0f + 1.0f / 256.0f), 0x3f80);  // tie rounds to even
  EXPECT_EQ(f32_to_f16(1e6f), 0x7c00);                    // overflow to infinity
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(NAN))));
}

}  // namespace
}  // namespace shardlm
