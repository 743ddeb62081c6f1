// --offload-exec: parsing, and the auto cost model's choice between streaming offloaded weights to
// the GPU and computing them on the CPU.
#include <gtest/gtest.h>

#include <vector>

#include "error_message.h"
#include "plan/device_map/offload_policy.h"

namespace shardlm {
namespace {

// 8 GB offloaded (4 G bf16 parameters), all of which a row computed on the CPU reads (a dense
// model); PCIe 50 GB/s: streaming costs 160 ms a step whatever the rows.
OffloadSpeeds eight_gigabytes(double cpu_read_gbps, int threads) {
  return {8e9, 4e9, 50.0, cpu_read_gbps, 20.0 * threads, 8e9, 4e9};
}

TEST(OffloadPolicy, ParsesTheThreeModesAndNamesTheOptionOtherwise) {
  EXPECT_EQ(parse_offload_exec("stream"), OffloadExec::STREAM);
  EXPECT_EQ(parse_offload_exec("cpu"), OffloadExec::CPU);
  EXPECT_EQ(parse_offload_exec("auto"), OffloadExec::AUTO);
  EXPECT_ERROR_NAMES(parse_offload_exec("gpu"), "--offload-exec", "\"gpu\"");
}

TEST(OffloadPolicy, FixedModesIgnoreTheSpeeds) {
  EXPECT_EQ(OffloadPolicy(OffloadExec::STREAM, eight_gigabytes(1000.0, 64)).choose(1), OffloadExec::STREAM);
  EXPECT_EQ(OffloadPolicy(OffloadExec::CPU, eight_gigabytes(1.0, 1)).choose(4096), OffloadExec::CPU);
}

TEST(OffloadPolicy, AutoRunsDecodeOnAFastCpuAndStreamsLongPrompts) {
  // 16 threads at 20 GFLOP/s: 25 ms per row once compute-bound; a 200 GB/s CPU reads 8 GB in 40 ms.
  const OffloadPolicy policy(OffloadExec::AUTO, eight_gigabytes(200.0, 16));
  EXPECT_NEAR(policy.stream_seconds(), 0.160, 1e-9);
  EXPECT_NEAR(policy.cpu_seconds(1), 0.040, 1e-9);
  EXPECT_NEAR(policy.cpu_seconds(512), 512 * 0.025, 1e-9);
  EXPECT_EQ(policy.choose(1), OffloadExec::CPU);
  EXPECT_EQ(policy.choose(6), OffloadExec::CPU);
  EXPECT_EQ(policy.choose(7), OffloadExec::STREAM);
  EXPECT_EQ(policy.choose(512), OffloadExec::STREAM);
}

TEST(OffloadPolicy, AutoStreamsEverythingWhenTheCpuReadsSlowerThanPcie) {
  const OffloadPolicy policy(OffloadExec::AUTO, eight_gigabytes(20.0, 16));
  EXPECT_EQ(policy.choose(1), OffloadExec::STREAM);
}

TEST(OffloadPolicy, AutoTriesOneCpuDecodeStepWhenTheProbeWasPessimistic) {
  // A 40 GB/s probe: 200 ms of CPU reads against 160 ms of streaming, within 2x, so the first
  // single row runs on the CPU to measure it.
  OffloadPolicy policy(OffloadExec::AUTO, eight_gigabytes(40.0, 16));
  EXPECT_EQ(policy.choose(1), OffloadExec::CPU);
  EXPECT_EQ(policy.choose(8), OffloadExec::STREAM) << "only single rows are tried";
  policy.observe_cpu(1, 0.100);  // the host was busier during the probe than now
  EXPECT_EQ(policy.choose(1), OffloadExec::CPU);
  OffloadPolicy slow(OffloadExec::AUTO, eight_gigabytes(40.0, 16));
  slow.observe_cpu(1, 0.190);  // the probe was right
  EXPECT_EQ(slow.choose(1), OffloadExec::STREAM);
}

TEST(OffloadPolicy, SlowDecodeStepsInARowTurnAutoToStreamingAndOneDoesNot) {
  OffloadPolicy policy(OffloadExec::AUTO, eight_gigabytes(200.0, 16));
  policy.observe_cpu(1, 0.060);  // slower than the 40 ms read floor, still faster than streaming
  EXPECT_EQ(policy.choose(1), OffloadExec::CPU);
  policy.observe_cpu(1, 0.200);  // one burst of the host's other work
  EXPECT_NEAR(policy.cpu_seconds(1), 0.060, 1e-9);
  EXPECT_EQ(policy.choose(1), OffloadExec::CPU);
  policy.observe_cpu(1, 0.060);
  policy.observe_cpu(1, 0.060);
  policy.observe_cpu(1, 0.210);
  EXPECT_EQ(policy.choose(1), OffloadExec::CPU) << "the median of 0.060, 0.060, 0.210";
  policy.observe_cpu(1, 0.220);
  EXPECT_NEAR(policy.cpu_seconds(1), 0.210, 1e-9);
  EXPECT_EQ(policy.choose(1), OffloadExec::STREAM);
}

TEST(OffloadPolicy, StreamedDecodeRetriesTheCpuEveryFewSteps) {
  // The probe's 200 GB/s puts the CPU at 40 ms, but the first CPU steps were slow (cold caches, a
  // busy host): 400 ms and 300 ms against 160 ms of streaming.
  OffloadPolicy policy(OffloadExec::AUTO, eight_gigabytes(200.0, 16));
  policy.observe_cpu(1, 0.400);
  policy.observe_cpu(1, 0.300);
  for (int round = 0; round < 3; ++round) {
    for (int step = 0; step < OffloadPolicy::kStreamStepsBeforeCpuRetry; ++step) {
      EXPECT_EQ(policy.choose(1), OffloadExec::STREAM) << "round " << round << ", step " << step;
      policy.observe_stream(1);
      policy.observe_stream(512);  // prompts streamed meanwhile do not count
    }
    EXPECT_EQ(policy.choose(1), OffloadExec::CPU) << "retried in round " << round;
    if (round < 2) policy.observe_cpu(1, 0.350);  // still busy
  }
  policy.observe_cpu(1, 0.090);  // calm again: the earlier slow steps no longer count
  EXPECT_NEAR(policy.cpu_seconds(1), 0.090, 1e-9);
  EXPECT_EQ(policy.choose(1), OffloadExec::CPU);
  // A probe that says the CPU cannot compete (20 GB/s: 400 ms) means no retries.
  OffloadPolicy slow(OffloadExec::AUTO, eight_gigabytes(20.0, 16));
  for (int step = 0; step < 3 * OffloadPolicy::kStreamStepsBeforeCpuRetry; ++step) {
    EXPECT_EQ(slow.choose(1), OffloadExec::STREAM);
    slow.observe_stream(1);
  }
}

TEST(OffloadPolicy, MeasuredComputeBoundStepsReplaceTheAssumedSpeed) {
  OffloadPolicy policy(OffloadExec::AUTO, eight_gigabytes(200.0, 16));
  policy.observe_cpu(8, 0.050);   // under 1.5x the 40 ms read floor: bandwidth-bound, says nothing
  EXPECT_NEAR(policy.cpu_seconds(8), 8 * 0.025, 1e-9);
  policy.observe_cpu(16, 0.080);  // compute-bound at 5 ms a row: faster than assumed
  EXPECT_NEAR(policy.cpu_seconds(16), 0.080, 1e-9);
  EXPECT_EQ(policy.choose(30), OffloadExec::CPU);
  EXPECT_EQ(policy.choose(33), OffloadExec::STREAM);
}

TEST(OffloadPolicy, TheOverlappedTailIsWhatTheCopyEngineBringsOverWhileTheCpuWorks) {
  OffloadSpeeds speeds;
  speeds.host_to_device_gbps = 55;
  speeds.cpu_read_gbps = 100;
  // 21 layers of 0.44 GB and a 1.05 GB head: both slots' worth (1.49 GB, 27 ms of copying) is done
  // long before the CPU finishes the other 8.7 GB (87 ms).
  std::vector<double> units(21, 0.44e9);
  units.push_back(1.05e9);
  EXPECT_EQ(overlapped_tail_units(units, units, 2, speeds), 2);
  EXPECT_EQ(overlapped_tail_units(units, units, 1, speeds), 1);
  // Two equal layers: copying one (8 ms) takes longer than the CPU's work on the other (4.4 ms).
  EXPECT_EQ(overlapped_tail_units(std::vector<double>{0.44e9, 0.44e9}, std::vector<double>{0.44e9, 0.44e9}, 2, speeds), 0);
  // A single unit always stays on the CPU; unknown speeds mean no tail.
  EXPECT_EQ(overlapped_tail_units(std::vector<double>{1e9}, std::vector<double>{1e9}, 2, speeds), 0);
  EXPECT_EQ(overlapped_tail_units(units, units, 2, OffloadSpeeds{}), 0);
  // Three units where the copy of two would outlast the CPU's work on the first.
  EXPECT_EQ(overlapped_tail_units(std::vector<double>{1e9, 1e9, 1e9}, std::vector<double>{1e9, 1e9, 1e9}, 2, speeds), 1);
  // MoE layers: the CPU reads an eighth of each (its chosen experts), so copying a layer (18 ms)
  // outlasts the CPU's work on the other two (2.5 ms): no tail, where equal reads would give one.
  EXPECT_EQ(overlapped_tail_units(std::vector<double>{1e9, 1e9, 1e9}, std::vector<double>{0.125e9, 0.125e9, 0.125e9}, 2,
                                  speeds),
            0);
}

TEST(OffloadPolicy, TheCpuOfAMixtureOfExpertsModelReadsAndComputesTheChosenExpertsOnly) {
  // 8 GB offloaded of which a row reads 1 GB and multiplies 0.5 G parameters: 5 ms a step on a
  // 200 GB/s CPU and 3.1 ms a row once compute-bound, against 160 ms of streaming.
  OffloadSpeeds speeds = eight_gigabytes(200.0, 16);
  speeds.cpu_row_bytes = 1e9;
  speeds.cpu_row_params = 0.5e9;
  const OffloadPolicy policy(OffloadExec::AUTO, speeds);
  EXPECT_NEAR(policy.stream_seconds(), 0.160, 1e-9);
  EXPECT_NEAR(policy.cpu_seconds(1), 0.005, 1e-9);
  EXPECT_NEAR(policy.cpu_seconds(40), 40 * 0.003125, 1e-9);
  EXPECT_EQ(policy.choose(51), OffloadExec::CPU);
  EXPECT_EQ(policy.choose(52), OffloadExec::STREAM);
}

}  // namespace
}  // namespace shardlm
