// Sampler and stop-string behaviour.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <map>

#include "core/error.h"
#include "ops/sampler.h"
#include "runtime/stop_strings.h"

namespace shardlm {
namespace {

const std::vector<float> kLogits = {0.1f, 2.0f, -1.0f, 1.9f, 0.0f};

TEST(Sampler, GreedyIsArgmaxAndTopKOneIsGreedy) {
  Sampler greedy({0.0f, 0, 1.0f, 0});
  EXPECT_EQ(greedy.sample(kLogits), 1);
  Sampler top1({1.5f, 1, 1.0f, 99});
  for (int i = 0; i < 20; ++i) EXPECT_EQ(top1.sample(kLogits), 1);
}

TEST(Sampler, SameSeedSameTokensAndTopKRestricts) {
  Sampler a({1.0f, 2, 1.0f, 42}), b({1.0f, 2, 1.0f, 42});
  std::map<int32_t, int> counts;
  for (int i = 0; i < 400; ++i) {
    const int32_t token = a.sample(kLogits);
    EXPECT_EQ(token, b.sample(kLogits));
    ++counts[token];
  }
  EXPECT_EQ(counts.size(), 2u);  // only tokens 1 and 3 survive top-k 2
  EXPECT_GT(counts[1], 100);
  EXPECT_GT(counts[3], 100);
}

TEST(Sampler, TopPKeepsSmallestSetReachingP) {
  // probabilities ≈ [0.9, 0.09, ...]: p = 0.5 keeps only the first.
  Sampler sampler({1.0f, 0, 0.5f, 1});
  const std::vector<float> peaked = {5.0f, 2.7f, 0.0f, -1.0f};
  for (int i = 0; i < 50; ++i) EXPECT_EQ(sampler.sample(peaked), 0);
}

// min-p keeps the tokens whose probability is at least min_p times the likeliest's, after the
// temperature: at T = 1 tokens 1 and 3 (e^-0.1 = 0.90 of the likeliest) pass 0.5, token 0 (0.15)
// does not; min_p 1 is greedy.
TEST(Sampler, MinPKeepsTokensNearTheLikeliest) {
  SamplingParams params{1.0f, 0, 1.0f, 7};
  params.min_p = 0.5f;
  Sampler sampler(params);
  std::map<int32_t, int> counts;
  for (int i = 0; i < 400; ++i) ++counts[sampler.sample(kLogits)];
  EXPECT_EQ(counts.size(), 2u);
  EXPECT_GT(counts[1], 100);
  EXPECT_GT(counts[3], 100);
  params.min_p = 1.0f;
  Sampler greedy(params);
  for (int i = 0; i < 50; ++i) EXPECT_EQ(greedy.sample(kLogits), 1);
  // A higher temperature flattens the distribution: at T = 20 tokens 0 and 4 are 0.91 of the
  // likeliest and pass 0.88; token 2 (e^(-3/20) = 0.86) still does not.
  params.temperature = 20.0f;
  params.min_p = 0.88f;
  Sampler hot(params);
  std::map<int32_t, int> hot_counts;
  for (int i = 0; i < 800; ++i) ++hot_counts[hot.sample(kLogits)];
  EXPECT_EQ(hot_counts.size(), 4u);
  EXPECT_EQ(hot_counts.count(2), 0u);
}

TEST(Sampler, NonFiniteLogitsGiveTheSentinelInEveryMode) {
  for (const float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                          -std::numeric_limits<float>::infinity()}) {
    std::vector<float> logits = kLogits;
    logits[4] = bad;
    for (const SamplingParams params : {SamplingParams{0.0f, 0, 1.0f, 0}, SamplingParams{1.0f, 2, 0.9f, 5}})
      EXPECT_EQ(Sampler(params).sample(logits), kNonFiniteLogits) << bad;
  }
  EXPECT_THROW(fail_non_finite_logits(2, 17), Error);
}

TEST(Sampler, LogprobsAreTheLogSoftmaxOfTheTokenAndTheLikeliest) {
  double sum = 0;
  for (float logit : kLogits) sum += std::exp(double(logit));
  auto expected = [&](int id) { return double(kLogits[size_t(id)]) - std::log(sum); };
  const SampledLogprobs result = sampled_logprobs(kLogits, 4, 3);
  EXPECT_NEAR(result.logprob, expected(4), 1e-6);
  ASSERT_EQ(result.top.size(), 3u);
  EXPECT_EQ(result.top[0].token, 1);  // 2.0, then 1.9, then 0.1
  EXPECT_EQ(result.top[1].token, 3);
  EXPECT_EQ(result.top[2].token, 0);
  for (const TokenLogprob& each : result.top) EXPECT_NEAR(each.logprob, expected(each.token), 1e-6);
  EXPECT_TRUE(sampled_logprobs(kLogits, 1, 0).top.empty());
  EXPECT_EQ(sampled_logprobs(kLogits, 1, 50).top.size(), kLogits.size()) << "at most every token";
  // Ties keep the lower id first, as argmax does.
  EXPECT_EQ(sampled_logprobs(std::vector<float>{1.0f, 3.0f, 3.0f}, 0, 1).top[0].token, 1);
}

TEST(Sampler, RejectsBadParameters) {
  EXPECT_THROW(validate_sampling_params(SamplingParams{0.0f, 0, 1.0f, 0, 21}), Error);
  EXPECT_NO_THROW(validate_sampling_params(SamplingParams{0.0f, 0, 1.0f, 0, 20}));
  EXPECT_THROW(Sampler({-1.0f, 0, 1.0f, 0}), Error);
  EXPECT_THROW(Sampler({1.0f, -3, 1.0f, 0}), Error);
  EXPECT_THROW(Sampler({1.0f, 0, 0.0f, 0}), Error);
  EXPECT_THROW(Sampler({1.0f, 0, 1.5f, 0}), Error);
}

TEST(StopStrings, FindsEarliestAndHoldsBackPossiblePrefixes) {
  const StopStrings stops({"\n\n", "Amen."});
  EXPECT_EQ(stops.find_stop("and he said. Amen. And\n\n"), 13u);
  EXPECT_EQ(stops.find_stop("nothing here"), std::string::npos);
  EXPECT_EQ(stops.safe_length("so be it. Am"), 10u);  // "Am" could become "Amen."
  EXPECT_EQ(stops.safe_length("line\n"), 4u);
  EXPECT_EQ(stops.safe_length("plain"), 5u);
  EXPECT_THROW(StopStrings({""}), Error);
}

}  // namespace
}  // namespace shardlm
