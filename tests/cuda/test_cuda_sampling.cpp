// The device sampler: greedy is argmax with torch's tie rule, top-k 1 and a tiny top-p collapse to
// greedy, seeds repeat, the sampled frequencies follow the temperature-scaled softmax, a row with
// a NaN or infinite logit anywhere gets the non-finite sentinel instead of a token, min-p keeps the
// tokens near the likeliest, and a row's penalties change its listed logits (keeping the raw ones)
// before it is sampled, as on the host.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <set>
#include <vector>

#include "core/cuda/device_buffer.h"
#include "ops/cuda/sampling.h"
#include "cuda_test_support.h"

namespace shardlm::cuda {
namespace {

// Samples rows of these logits (vocab each), row i with settings[i] and random stream offsets[i].
std::vector<int32_t> sample_each(const std::vector<float>& logits, const std::vector<RowSampling>& settings,
                                 const std::vector<int32_t>& offsets) {
  const int rows = int(settings.size());
  DeviceBuffer device_logits(logits.size() * sizeof(float)), device_settings(settings.size() * sizeof(RowSampling)),
      device_offsets(offsets.size() * sizeof(int32_t)), device_tokens(size_t(rows) * sizeof(int32_t));
  CUDA_CHECK(cudaMemcpy(device_logits.get(), logits.data(), device_logits.bytes(), cudaMemcpyHostToDevice));
  CUDA_CHECK(cudaMemcpy(device_settings.get(), settings.data(), device_settings.bytes(), cudaMemcpyHostToDevice));
  CUDA_CHECK(cudaMemcpy(device_offsets.get(), offsets.data(), device_offsets.bytes(), cudaMemcpyHostToDevice));
  launch_sampling({device_logits.get<float>(), rows, int(logits.size() / settings.size()),
                   device_settings.get<RowSampling>(), device_offsets.get<int32_t>(), device_tokens.get<int32_t>()},
                  nullptr);
  std::vector<int32_t> tokens(static_cast<size_t>(rows));
  CUDA_CHECK(cudaMemcpy(tokens.data(), device_tokens.get(), device_tokens.bytes(), cudaMemcpyDeviceToHost));
  return tokens;
}

// Samples `draws` rows that all hold the same logits and settings (each row its own random stream).
std::vector<int32_t> sample_rows(const std::vector<float>& logits, int draws, float temperature, int top_k, float top_p,
                                 uint64_t seed) {
  const int vocab = int(logits.size());
  std::vector<float> all(size_t(draws) * size_t(vocab));
  std::vector<int32_t> offsets(static_cast<size_t>(draws));
  for (int row = 0; row < draws; ++row) {
    std::copy(logits.begin(), logits.end(), all.begin() + int64_t(row) * vocab);
    offsets[size_t(row)] = row;
  }
  return sample_each(all, std::vector<RowSampling>(size_t(draws), RowSampling{temperature, top_k, top_p, seed}),
                     offsets);
}

std::vector<float> test_logits() {
  std::vector<float> logits(5000);
  for (size_t i = 0; i < logits.size(); ++i) logits[i] = std::sin(float(i) * 0.37f) * 3.0f;
  logits[4321] = 9.0f;
  logits[17] = 8.0f;
  logits[18] = 8.0f;
  return logits;
}

// A server's batch: every row its own temperature, top-k, top-p and seed, each as if sampled alone.
TEST(CudaSampling, EachRowFollowsItsOwnSettings) {
  SKIP_WITHOUT_CUDA_DEVICE();
  const std::vector<float> logits = test_logits();
  const std::vector<RowSampling> settings = {
      {0.0f, 0, 1.0f, 0}, {0.8f, 0, 1.0f, 11}, {1.0f, 40, 1.0f, 12}, {1.2f, 0, 0.9f, 13}, {0.7f, 100, 0.8f, 14}};
  const int rows = int(settings.size());
  for (int trial = 0; trial < 8; ++trial) {
    std::vector<float> batch;
    std::vector<int32_t> offsets;
    for (int row = 0; row < rows; ++row) {
      batch.insert(batch.end(), logits.begin(), logits.end());
      offsets.push_back(trial * rows + row);
    }
    const std::vector<int32_t> together = sample_each(batch, settings, offsets);
    for (int row = 0; row < rows; ++row) {
      const int32_t alone = sample_each(logits, {settings[size_t(row)]}, {offsets[size_t(row)]}).at(0);
      EXPECT_EQ(together[size_t(row)], alone) << "row " << row << ", trial " << trial;
    }
    EXPECT_EQ(together[0], 4321) << "the greedy row";
  }
}

TEST(CudaSampling, GreedyIsArgmaxWithFirstIndexOnTies) {
  SKIP_WITHOUT_CUDA_DEVICE();
  std::vector<float> logits = test_logits();
  EXPECT_EQ(sample_rows(logits, 3, 0.0f, 0, 1.0f, 1), std::vector<int32_t>(3, 4321));
  logits[4321] = 8.0f;  // now 17, 18 and 4321 tie: the first wins
  EXPECT_EQ(sample_rows(logits, 1, 0.0f, 0, 1.0f, 1).at(0), 17);
}

TEST(CudaSampling, GreedyFindsTheMaximumAnywhereInRowsThatAreNotAligned) {
  SKIP_WITHOUT_CUDA_DEVICE();
  // Rows after the first start off 16-byte alignment, and the vectorised passes (1024 threads, four
  // 4-float loads in flight) have a lead, an unrolled body, a remainder and a tail.
  const int vocab = 4 * 4 * 1024 * 3 + 4 * 500 + 3;
  std::vector<float> logits(static_cast<size_t>(vocab));
  for (int i = 0; i < vocab; ++i) logits[size_t(i)] = std::cos(float(i) * 0.11f);
  for (int position : {0, 2, 3, 5000, 4 * 4 * 1024 * 2 + 1, 4 * 4 * 1024 * 3 + 77, vocab - 5, vocab - 1}) {
    std::vector<float> peaked = logits;
    peaked[size_t(position)] = 5.0f;
    EXPECT_EQ(sample_rows(peaked, 3, 0.0f, 0, 1.0f, 1), std::vector<int32_t>(3, position)) << position;
    EXPECT_EQ(sample_rows(peaked, 3, 1.0f, 1, 1.0f, 1), std::vector<int32_t>(3, position)) << position;
  }
}

TEST(CudaSampling, TopKOneAndTinyTopPAreGreedy) {
  SKIP_WITHOUT_CUDA_DEVICE();
  const std::vector<float> logits = test_logits();
  for (int32_t token : sample_rows(logits, 64, 1.0f, 1, 1.0f, 7)) EXPECT_EQ(token, 4321);
  for (int32_t token : sample_rows(logits, 64, 1.0f, 0, 0.01f, 7)) EXPECT_EQ(token, 4321);
}

TEST(CudaSampling, SeedsRepeatAndTopKBoundsTheSupport) {
  SKIP_WITHOUT_CUDA_DEVICE();
  const std::vector<float> logits = test_logits();
  EXPECT_EQ(sample_rows(logits, 256, 2.0f, 3, 1.0f, 42), sample_rows(logits, 256, 2.0f, 3, 1.0f, 42));
  EXPECT_NE(sample_rows(logits, 256, 2.0f, 3, 1.0f, 42), sample_rows(logits, 256, 2.0f, 3, 1.0f, 43));
  for (int32_t token : sample_rows(logits, 512, 2.0f, 3, 1.0f, 5))
    EXPECT_TRUE(token == 4321 || token == 17 || token == 18) << token;
}

TEST(CudaSampling, NonFiniteLogitsGiveTheSentinelInEveryMode) {
  SKIP_WITHOUT_CUDA_DEVICE();
  // Positions in the lead, the unrolled body and the tail of a row that is not 16-byte aligned.
  const int vocab = 4 * 4 * 1024 * 2 + 4 * 300 + 3;
  std::vector<float> logits(static_cast<size_t>(vocab));
  for (int i = 0; i < vocab; ++i) logits[size_t(i)] = std::sin(float(i) * 0.3f);
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  struct Mode {
    float temperature;
    int top_k;
    float top_p;
  };
  for (const Mode mode : {Mode{0.0f, 0, 1.0f}, Mode{1.0f, 0, 1.0f}, Mode{0.7f, 40, 0.9f}}) {
    for (const float bad : {nan, inf, -inf}) {
      for (int position : {1, 4 * 4 * 1024 + 9, vocab - 1}) {
        std::vector<float> broken = logits;
        broken[size_t(position)] = bad;
        EXPECT_EQ(sample_rows(broken, 2, mode.temperature, mode.top_k, mode.top_p, 3),
                  std::vector<int32_t>(2, kNonFiniteLogitsToken))
            << "temperature " << mode.temperature << ", logit " << bad << " at " << position;
      }
    }
    EXPECT_NE(sample_rows(logits, 1, mode.temperature, mode.top_k, mode.top_p, 3).at(0), kNonFiniteLogitsToken);
  }
}

TEST(CudaSampling, FrequenciesFollowTheSoftmax) {
  SKIP_WITHOUT_CUDA_DEVICE();
  const std::vector<float> logits = {1.0f, 2.0f, 0.0f, 1.5f};
  const float temperature = 0.8f;
  const int draws = 20000;
  const std::vector<int32_t> tokens = sample_rows(logits, draws, temperature, 0, 1.0f, 99);
  std::vector<double> counts(logits.size());
  for (int32_t token : tokens) counts[size_t(token)] += 1;
  double total = 0;
  for (float logit : logits) total += std::exp(logit / temperature);
  for (size_t i = 0; i < logits.size(); ++i) {
    const double expected = std::exp(logits[i] / temperature) / total;
    // 5 standard deviations of a binomial proportion.
    EXPECT_NEAR(counts[i] / draws, expected, 5 * std::sqrt(expected * (1 - expected) / draws)) << "token " << i;
  }
}

// min-p as the host's sampler applies it: at T = 1 only tokens 1 and 3 are at least half as likely
// as the likeliest; at T = 20 all but token 2 pass 0.88; min_p 1 is greedy.
TEST(CudaSampling, MinPKeepsTokensNearTheLikeliest) {
  SKIP_WITHOUT_CUDA_DEVICE();
  const std::vector<float> logits = {0.1f, 2.0f, -1.0f, 1.9f, 0.0f};
  auto drawn = [&](float temperature, float min_p, int draws) {
    std::vector<float> all;
    std::vector<int32_t> offsets;
    for (int row = 0; row < draws; ++row) {
      all.insert(all.end(), logits.begin(), logits.end());
      offsets.push_back(row);
    }
    RowSampling settings{temperature, 0, 1.0f, 5};
    settings.min_p = min_p;
    std::set<int32_t> tokens;
    for (int32_t token : sample_each(all, std::vector<RowSampling>(size_t(draws), settings), offsets)) tokens.insert(token);
    return tokens;
  };
  EXPECT_EQ(drawn(1.0f, 0.5f, 400), (std::set<int32_t>{1, 3}));
  EXPECT_EQ(drawn(20.0f, 0.88f, 800), (std::set<int32_t>{0, 1, 3, 4}));
  EXPECT_EQ(drawn(1.0f, 1.0f, 100), (std::set<int32_t>{1}));
}

TEST(CudaSampling, PenaltiesChangeTheListedLogitsInPlaceAndKeepTheRawOnes) {
  SKIP_WITHOUT_CUDA_DEVICE();
  std::vector<float> logits = test_logits();  // greedy: 4321 (9.0), then 17 and 18 (8.0)
  const std::vector<PenalisedToken> tokens = {{4321, 1, 0, 0.0f}, {17, 0, 1, 0.5f}, {3, 0, 0, -2.0f}};
  const PenaltyScales scales{1.5f, 0.25f, 0.5f};
  DeviceBuffer device_logits(logits.size() * sizeof(float)), device_tokens(tokens.size() * sizeof(PenalisedToken)),
      raw(tokens.size() * sizeof(float)), device_settings(sizeof(RowSampling)), offsets(sizeof(int32_t)),
      sampled(sizeof(int32_t));
  RowSampling settings;
  settings.scales = scales;
  settings.n_penalised = int32_t(tokens.size());
  settings.penalised = device_tokens.get<PenalisedToken>();
  settings.raw_logits = raw.get<float>();
  const int32_t offset = 0;
  CUDA_CHECK(cudaMemcpy(device_logits.get(), logits.data(), device_logits.bytes(), cudaMemcpyHostToDevice));
  CUDA_CHECK(cudaMemcpy(device_tokens.get(), tokens.data(), device_tokens.bytes(), cudaMemcpyHostToDevice));
  CUDA_CHECK(cudaMemcpy(device_settings.get(), &settings, sizeof(settings), cudaMemcpyHostToDevice));
  CUDA_CHECK(cudaMemcpy(offsets.get(), &offset, sizeof(offset), cudaMemcpyHostToDevice));
  launch_sampling({device_logits.get<float>(), 1, int(logits.size()), device_settings.get<RowSampling>(),
                   offsets.get<int32_t>(), sampled.get<int32_t>()},
                  nullptr);
  int32_t token = -1;
  CUDA_CHECK(cudaMemcpy(&token, sampled.get(), sizeof(token), cudaMemcpyDeviceToHost));
  std::vector<float> changed(logits.size()), kept(tokens.size());
  CUDA_CHECK(cudaMemcpy(changed.data(), device_logits.get(), device_logits.bytes(), cudaMemcpyDeviceToHost));
  CUDA_CHECK(cudaMemcpy(kept.data(), raw.get(), raw.bytes(), cudaMemcpyDeviceToHost));
  // 4321: 9 / 1.5 - 0.25 - 0.5 = 5.25; 17: (8 + 0.5) / 1.5 = 5.67; 18 keeps its 8 and wins.
  EXPECT_EQ(token, 18);
  std::vector<float> expected = logits;
  for (size_t i = 0; i < tokens.size(); ++i) {
    EXPECT_EQ(kept[i], logits[size_t(tokens[i].token)]) << "token " << tokens[i].token;
    expected[size_t(tokens[i].token)] = penalised_logit(logits[size_t(tokens[i].token)], tokens[i], scales);
  }
  EXPECT_EQ(changed, expected);
}

}  // namespace
}  // namespace shardlm::cuda
