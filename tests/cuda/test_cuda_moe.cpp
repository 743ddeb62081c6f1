// Mixture-of-experts ops on the GPU against the CPU's rule and a host computation over the same
// bf16 operands: routing picks the experts and weights ops/cpu/expert_routing.h picks; grouping
// lists every in-range pair once, expert by expert (also when one launch routes and groups); the
// experts' outputs combined per row equal Σ weight · down_e(silu(gate_e x) · up_e x), by the
// decode path's kernels (one row's, and a batch's tensor-core tiles) and the prompt path's grouped
// GEMMs, for all experts on one rank and for an expert-parallel rank holding some of them (other
// ranks' slots add nothing).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "core/cuda/device_buffer.h"
#include "core/dtype.h"
#include "core/error.h"
#include "cuda_test_support.h"
#include "ops/cpu/expert_routing.h"
#include "ops/cuda/expert_grouped_gemm.h"
#include "ops/cuda/expert_mlp.h"
#include "ops/cuda/moe_routing.h"

namespace shardlm::cuda {
namespace {

template <typename T>
DeviceBuffer upload(const std::vector<T>& values) {
  DeviceBuffer buffer(values.size() * sizeof(T));
  CUDA_CHECK(cudaMemcpy(buffer.get(), values.data(), buffer.bytes(), cudaMemcpyHostToDevice));
  return buffer;
}

template <typename T>
std::vector<T> download(const DeviceBuffer& buffer, size_t count) {
  std::vector<T> values(count);
  CUDA_CHECK(cudaMemcpy(values.data(), buffer.get(), count * sizeof(T), cudaMemcpyDeviceToHost));
  return values;
}

std::vector<float> random_logits(int rows, int experts, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 2.0f);
  std::vector<float> logits(size_t(rows) * size_t(experts));
  for (float& value : logits) value = normal(rng);
  return logits;
}

TEST(CudaMoe, RoutingPicksWhatTheCpuPicks) {
  SKIP_WITHOUT_CUDA_DEVICE();
  // Experts a lane holds: 1, 2, 4, 8, 16 and 32.
  for (const auto& [experts, top_k, normalize] : {std::tuple{8, 2, true}, {60, 4, false}, {128, 8, true},
                                                  {200, 8, true}, {512, 16, true}, {1000, 3, false}}) {
    const int rows = 37;
    const std::vector<float> logits = random_logits(rows, experts, unsigned(experts));
    const DeviceBuffer device_logits = upload(logits);
    DeviceBuffer ids(size_t(rows * top_k) * 4), weights(size_t(rows * top_k) * 4);
    launch_route_top_k({device_logits.get<float>(), rows, experts, top_k, normalize, ids.get<int32_t>(),
                        weights.get<float>()},
                       nullptr);
    const cpu::ExpertRoutes expected = cpu::route_top_k(logits.data(), rows, experts, top_k, normalize);
    EXPECT_EQ(download<int32_t>(ids, expected.experts.size()), expected.experts) << experts;
    const std::vector<float> got = download<float>(weights, expected.weights.size());
    for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], expected.weights[i], 1e-5f) << experts << " slot " << i;
  }
}

// The grouping launch_group_by_expert (or launch_route_and_group) left on the device for these
// choices: every in-range pair once under its expert, and the chosen in-range experts in order.
void expect_grouped(const std::vector<int32_t>& chosen, int experts, int first, int end, const DeviceBuffer& offsets,
                    const DeviceBuffer& grouped, const DeviceBuffer& active) {
  const int pairs = int(chosen.size());
  const std::vector<int32_t> starts = download<int32_t>(offsets, size_t(experts + 1));
  const std::vector<int32_t> order = download<int32_t>(grouped, size_t(starts.back()));
  std::vector<int32_t> chosen_in_range(size_t(end - first), -1);
  for (int e = first, i = 0; e < end; ++e)
    if (std::count(chosen.begin(), chosen.end(), e) > 0) chosen_in_range[size_t(i++)] = e;
  EXPECT_EQ(download<int32_t>(active, size_t(end - first)), chosen_in_range);
  for (int e = 0; e < experts; ++e) {
    std::vector<int32_t> expected;
    for (int p = 0; p < pairs; ++p)
      if (chosen[size_t(p)] == e && e >= first && e < end) expected.push_back(p);
    std::vector<int32_t> got(order.begin() + starts[size_t(e)], order.begin() + starts[size_t(e) + 1]);
    std::sort(got.begin(), got.end());
    EXPECT_EQ(got, expected) << "expert " << e;
  }
}

// The counts are scanned by one warp, each lane taking a run of experts: 16 experts leave lanes
// with none, 60 and 1000 give runs of uneven length and a short last one.
TEST(CudaMoe, GroupingListsEachInRangePairOnceByExpert) {
  SKIP_WITHOUT_CUDA_DEVICE();
  for (const auto& [experts, first, end] : {std::tuple{16, 4, 12}, {60, 0, 60}, {60, 7, 53}, {1000, 100, 1000}}) {
    const int pairs = 300;
    std::vector<int32_t> chosen(pairs);
    for (int p = 0; p < pairs; ++p) chosen[size_t(p)] = (p * 7 + p / 5) % experts;
    const DeviceBuffer device_chosen = upload(chosen);
    DeviceBuffer offsets(size_t(experts + 1) * 4), grouped(size_t(pairs) * 4), active(size_t(end - first) * 4);
    launch_group_by_expert({device_chosen.get<int32_t>(), pairs, experts, first, end, offsets.get<int32_t>(),
                            grouped.get<int32_t>(), active.get<int32_t>()},
                           nullptr);
    SCOPED_TRACE(testing::Message() << experts << " experts, rank range " << first << ".." << end);
    expect_grouped(chosen, experts, first, end, offsets, grouped, active);
  }
}

TEST(CudaMoe, RoutingAndGroupingInOneLaunchPickAndListWhatTheCpuDoes) {
  SKIP_WITHOUT_CUDA_DEVICE();
  // Up to kFusedRouteMaxRows rows in one block (a warp routing several rows in turn), then past it
  // the two launches; all experts, and an expert-parallel rank's range; 4 and 8 experts a lane.
  const int top_k = 8;
  for (const auto& [experts, rows, first, end] : {std::tuple{128, 1, 0, 128}, {128, 33, 0, 128},
                                                  {128, kFusedRouteMaxRows, 32, 96}, {128, 70, 32, 96},
                                                  {200, 33, 0, 200}, {200, kFusedRouteMaxRows, 32, 96}}) {
    const std::vector<float> logits = random_logits(rows, experts, unsigned(rows));
    const DeviceBuffer device_logits = upload(logits);
    const int pairs = rows * top_k;
    DeviceBuffer ids(size_t(pairs) * 4), weights(size_t(pairs) * 4);
    DeviceBuffer offsets(size_t(experts + 1) * 4), grouped(size_t(pairs) * 4), active(size_t(end - first) * 4);
    launch_route_and_group({device_logits.get<float>(), rows, experts, top_k, true, ids.get<int32_t>(), weights.get<float>()},
                           {ids.get<int32_t>(), pairs, experts, first, end, offsets.get<int32_t>(), grouped.get<int32_t>(),
                            active.get<int32_t>()},
                           nullptr);
    const cpu::ExpertRoutes expected = cpu::route_top_k(logits.data(), rows, experts, top_k, true);
    EXPECT_EQ(download<int32_t>(ids, expected.experts.size()), expected.experts)
        << experts << " experts, " << rows << " rows";
    const std::vector<float> got = download<float>(weights, expected.weights.size());
    for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], expected.weights[i], 1e-5f) << rows << " rows, slot " << i;
    expect_grouped(expected.experts, experts, first, end, offsets, grouped, active);
  }
}

struct ExpertCase {
  int rows, top_k, hidden, ff, experts, first, end;
};

// `grouped_gemm` may have run other cases before: what it keeps of a call must not leak into the next.
void check_experts(const ExpertCase& c, ExpertGroupedGemm& grouped_gemm) {
  std::mt19937 rng(unsigned(c.rows * 31 + c.first));
  std::normal_distribution<float> normal(0.0f, 0.5f);
  const auto random_bf16 = [&](size_t n) {
    std::vector<uint16_t> values(n);
    for (uint16_t& value : values) value = f32_to_bf16(normal(rng));
    return values;
  };
  const int local = c.end - c.first;
  const std::vector<uint16_t> x = random_bf16(size_t(c.rows * c.hidden));
  const std::vector<uint16_t> gate_up = random_bf16(size_t(local) * 2 * c.ff * c.hidden);
  const std::vector<uint16_t> down = random_bf16(size_t(local) * c.hidden * c.ff);
  const std::vector<float> logits = random_logits(c.rows, c.experts, unsigned(c.hidden));
  const cpu::ExpertRoutes routes = cpu::route_top_k(logits.data(), c.rows, c.experts, c.top_k, true);

  const int pairs = c.rows * c.top_k;
  const DeviceBuffer device_x = upload(x), device_gate_up = upload(gate_up), device_down = upload(down);
  const DeviceBuffer device_experts = upload(routes.experts), device_weights = upload(routes.weights);
  DeviceBuffer offsets(size_t(c.experts + 1) * 4), grouped(size_t(pairs) * 4), active(size_t(local) * 4);
  DeviceBuffer activated(size_t(pairs) * size_t(c.ff) * 2), expert_out(size_t(pairs) * size_t(c.hidden) * 4);
  DeviceBuffer rows(size_t(pairs) * size_t(c.hidden) * 2), gate_up_out(size_t(pairs) * 2 * size_t(c.ff) * 2);
  DeviceBuffer positions(size_t(pairs) * 4);
  std::vector<float> residual(size_t(c.rows * c.hidden), 1.0f);
  const DeviceBuffer out = upload(residual), grouped_out = upload(residual);
  launch_group_by_expert({device_experts.get<int32_t>(), pairs, c.experts, c.first, c.end, offsets.get<int32_t>(),
                          grouped.get<int32_t>(), active.get<int32_t>()},
                         nullptr);
  // NaN everywhere the kernels should not read: a pair of another rank's expert would poison the sum.
  for (DeviceBuffer* scratch : {&activated, &expert_out, &rows, &gate_up_out})
    CUDA_CHECK(cudaMemset(scratch->get(), 0xFF, scratch->bytes()));
  const ExpertMlpParams mlp{device_x.get<__nv_bfloat16>(), c.rows, c.top_k, c.hidden, c.ff, c.experts, c.first, local,
                            offsets.get<int32_t>(), grouped.get<int32_t>(), active.get<int32_t>(),
                            device_gate_up.get<__nv_bfloat16>(), device_down.get<__nv_bfloat16>(),
                            activated.get<__nv_bfloat16>(), expert_out.get<float>()};
  launch_routed_experts(mlp,
                        {expert_out.get<float>(), device_weights.get<float>(), device_experts.get<int32_t>(), c.rows,
                         c.top_k, c.hidden, c.first, c.end, out.get<float>()},
                        nullptr);
  const std::vector<float> got = download<float>(out, residual.size());
  // The prompt path over the same operands: tensor-core GEMMs grouped by expert.
  CUDA_CHECK(cudaMemset(activated.get(), 0xFF, activated.bytes()));
  grouped_gemm.run({mlp, device_weights.get<float>(), device_experts.get<int32_t>(), rows.get<__nv_bfloat16>(),
                    gate_up_out.get<__nv_bfloat16>(), positions.get<int32_t>(), grouped_out.get<float>()},
                   nullptr);
  const std::vector<float> got_grouped = download<float>(grouped_out, residual.size());

  // The host's sum over the same bf16 operands, the activation rounded to bf16 as the GPU stores it
  // (now and then a rounding lands on the other side of a bf16 step: a desk simulation of the kernels
  // put the error near 1e-7; a wrong expert, row or weight is off by the whole output).
  double error = 0, grouped_error = 0, norm = 0;
  for (int row = 0; row < c.rows; ++row) {
    std::vector<double> expected(size_t(c.hidden), 1.0);
    for (int slot = 0; slot < c.top_k; ++slot) {
      const int expert = routes.experts[size_t(row * c.top_k + slot)];
      if (expert < c.first || expert >= c.end) continue;
      const int64_t e = expert - c.first;
      std::vector<float> h(size_t(c.ff));
      for (int j = 0; j < c.ff; ++j) {
        double g = 0, u = 0;
        for (int i = 0; i < c.hidden; ++i) {
          const double xi = bf16_to_f32(x[size_t(row * c.hidden + i)]);
          g += xi * bf16_to_f32(gate_up[size_t((e * 2 * c.ff + j) * c.hidden + i)]);
          u += xi * bf16_to_f32(gate_up[size_t((e * 2 * c.ff + c.ff + j) * c.hidden + i)]);
        }
        h[size_t(j)] = bf16_to_f32(f32_to_bf16(float(g / (1.0 + std::exp(-g)) * u)));
      }
      for (int d = 0; d < c.hidden; ++d) {
        double y = 0;
        for (int j = 0; j < c.ff; ++j) y += double(h[size_t(j)]) * bf16_to_f32(down[size_t((e * c.hidden + d) * c.ff + j)]);
        expected[size_t(d)] += routes.weights[size_t(row * c.top_k + slot)] * y;
      }
    }
    for (int d = 0; d < c.hidden; ++d) {
      const double difference = got[size_t(row * c.hidden + d)] - expected[size_t(d)];
      const double grouped_difference = got_grouped[size_t(row * c.hidden + d)] - expected[size_t(d)];
      error += difference * difference;
      grouped_error += grouped_difference * grouped_difference;
      norm += (expected[size_t(d)] - 1.0) * (expected[size_t(d)] - 1.0);
    }
  }
  EXPECT_LT(std::sqrt(error / norm), 1e-4) << c.rows << " rows, experts [" << c.first << ", " << c.end << ")";
  // The grouped GEMMs round the gate/up values and each pair's output to bf16 (each within 2^-9).
  EXPECT_LT(std::sqrt(grouped_error / norm), 1e-2) << "grouped: " << c.rows << " rows, experts [" << c.first << ", "
                                                   << c.end << ")";
}

TEST(CudaMoe, ExpertsCombinedMatchTheHostOverTheSameBf16Operands) {
  SKIP_WITHOUT_CUDA_DEVICE();
  ExpertGroupedGemm eight(8), sixteen(16), sixty_four(64);
  check_experts({1, 2, 64, 32, 8, 0, 8}, eight);     // a decode row
  check_experts({37, 2, 64, 32, 8, 0, 8}, eight);    // a batch: experts shared by many rows (several passes)
  check_experts({37, 2, 64, 32, 8, 4, 8}, eight);    // the same object, now a rank holding experts 4-7
  check_experts({37, 4, 128, 48, 16, 4, 12}, sixteen); // an expert-parallel rank holding experts 4-11
  check_experts({64, 8, 520, 264, 64, 8, 40}, sixty_four); // every lane, several chunks each; Qwen3-MoE's 8 of 64
  // hidden 2056: a lane's loads of a row go round more than once (one row keeps 4 loads in flight:
  // more than 32 lanes x 4 loads of 8 elements), and its last round is partial; a batch's tiles end
  // in a partial 32-element step (2056 = 64 x 32 + 8) and a partial 16-feature tile (264 = 16 x 16 + 8)
  check_experts({1, 8, 2056, 264, 64, 0, 64}, sixty_four);
  check_experts({1, 8, 2056, 264, 64, 8, 40}, sixty_four);  // one row on a rank holding experts 8-39
  check_experts({3, 8, 2056, 264, 64, 0, 64}, sixty_four);
  // One row whose slots' activations are more than three rounds of 8 loads a lane (2 x 385 chunks
  // of 8): the long-row down kernel and its table, each slot's last group of 32 chunks with one lane,
  // hidden 72 a block of 8 warps with one feature; then a rank holding experts 2-5 of 8.
  check_experts({1, 2, 72, 3080, 8, 0, 8}, eight);
  check_experts({1, 4, 64, 1544, 8, 2, 6}, eight);
}

// The launcher refuses before any kernel runs, so this runs on machines without a GPU too.
TEST(CudaMoe, ExpertKernelsRefuseACombineOverOtherExpertsThanTheRankHoldsAndExpertsOfNoWidth) {
  ExpertMlpParams mlp;
  mlp.n_rows = 1;
  mlp.top_k = 2;
  mlp.hidden = 64;
  mlp.ff = 32;
  mlp.n_experts = 8;
  mlp.first_expert = 4;
  mlp.n_local_experts = 4;
  ExpertCombineParams combine;
  combine.n_rows = 1;
  combine.top_k = 2;
  combine.hidden = 64;
  combine.first_expert = 0;  // the whole layer, on a rank holding experts 4-7
  combine.end_expert = 8;
  try {
    launch_routed_experts(mlp, combine, nullptr);
    FAIL() << "a combine over experts 0-7 ran on a rank holding 4-7";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("a combine over other experts than the rank holds"), std::string::npos)
        << error.what();
  }
  // Experts of no width: one row's down kernel would divide by their chunks.
  mlp.ff = 0;
  combine.first_expert = 4;
  try {
    launch_routed_experts(mlp, combine, nullptr);
    FAIL() << "experts of width 0 ran";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("not a positive multiple of 8"), std::string::npos) << error.what();
  }
}

TEST(CudaMoe, RoutingARowOfNanPicksRealExperts) {
  SKIP_WITHOUT_CUDA_DEVICE();
  const int experts = 8, top_k = 2;
  std::vector<float> logits(experts, std::nanf(""));
  const DeviceBuffer device_logits = upload(logits);
  DeviceBuffer ids(size_t(top_k) * 4), weights(size_t(top_k) * 4);
  launch_route_top_k({device_logits.get<float>(), 1, experts, top_k, true, ids.get<int32_t>(), weights.get<float>()},
                     nullptr);
  for (const int32_t id : download<int32_t>(ids, top_k)) EXPECT_TRUE(id >= 0 && id < experts) << id;
}

}  // namespace
}  // namespace shardlm::cuda
