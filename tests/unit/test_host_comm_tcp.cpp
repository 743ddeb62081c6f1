// Tests for the TCP process-group communicator with real processes: the test forks one child per
// rank, the children rendezvous on a free loopback port and run collectives, and report through a
// shared memory page (status, error message, elapsed time, result bytes). Covered: every collective
// for world sizes 2 and 3 and sizes up to 1M, results bit-identical across ranks and equal to the
// rank-order sum, and the failure paths, each timed against a timeout much longer than the failure
// may take: a rank that exits, is killed, throws, hangs, or calls the wrong collective, a rank 0
// that dies, and rendezvous mistakes.
#include <gtest/gtest.h>

#include <netinet/in.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <functional>
#include <random>
#include <thread>

#include "core/error.h"
#include "error_message.h"
#include "parallel/comm/tcp_communicator.h"

namespace shardlm {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;


int free_port() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address));
  socklen_t length = sizeof(address);
  getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  close(fd);
  return ntohs(address.sin_port);
}

constexpr size_t kMessageBytes = 2048;
constexpr size_t kResultBytes = size_t(8) << 20;

// One rank's report, in memory shared with the parent.
struct RankReport {
  int finished = 0;  // 1: the body returned; 2: it threw
  double seconds = 0.0;
  char message[kMessageBytes];
  size_t result_bytes = 0;
  std::byte result[kResultBytes];
};

struct Outcome {
  bool exited = false;  // false: killed (by the test, or after the time limit)
  int exit_code = -1;
  int finished = 0;
  double seconds = 0.0;
  std::string message;
  std::vector<std::byte> result;
};

void save_result(RankReport& report, const void* data, size_t bytes) {
  report.result_bytes = std::min(bytes, kResultBytes);
  std::memcpy(report.result, data, report.result_bytes);
}

using RankBody = std::function<void(TcpCommunicator&, RankReport&)>;

// Forks one process per rank; each connects and runs body. A body that throws aborts its
// communicator with the message, as the CLI does before exiting. `during` runs in the parent while
// the ranks run (to kill one, say). Ranks still running after `limit` are killed.
std::vector<Outcome> run_ranks(int world, const std::vector<int>& ranks, CommOptions comm_options, const RankBody& body,
                               const std::function<void(const std::vector<pid_t>&)>& during = nullptr,
                               milliseconds limit = milliseconds(20'000), int claimed_world = 0) {
  const int port = free_port();
  auto* reports = static_cast<RankReport*>(
      mmap(nullptr, sizeof(RankReport) * ranks.size(), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0));
  std::vector<pid_t> pids;
  for (size_t i = 0; i < ranks.size(); ++i) {
    const pid_t pid = fork();
    if (pid == 0) {
      RankReport& report = reports[i];
      const auto start = Clock::now();
      std::unique_ptr<TcpCommunicator> comm;
      int code = 0;
      try {
        TcpOptions options{ranks[i], claimed_world > 0 && ranks[i] != 0 ? claimed_world : world, "127.0.0.1", port, comm_options};
        comm = TcpCommunicator::connect(options);
        body(*comm, report);
        report.finished = 1;
      } catch (const std::exception& error) {
        if (comm) comm->abort(error.what());
        std::snprintf(report.message, kMessageBytes, "%s", error.what());
        report.finished = 2;
        code = 1;
      }
      report.seconds = std::chrono::duration<double>(Clock::now() - start).count();
      comm.reset();
      _exit(code);
    }
    pids.push_back(pid);
  }
  if (during) during(pids);
  std::vector<Outcome> outcomes(ranks.size());
  const auto deadline = Clock::now() + limit;
  for (size_t i = 0; i < pids.size(); ++i) {
    int status = 0;
    while (waitpid(pids[i], &status, WNOHANG) == 0) {
      if (Clock::now() > deadline) {
        kill(pids[i], SIGKILL);
        waitpid(pids[i], &status, 0);
        break;
      }
      std::this_thread::sleep_for(milliseconds(5));
    }
    Outcome& outcome = outcomes[i];
    outcome.exited = WIFEXITED(status);
    outcome.exit_code = outcome.exited ? WEXITSTATUS(status) : -1;
    outcome.finished = reports[i].finished;
    outcome.seconds = reports[i].seconds;
    outcome.message = reports[i].message;
    outcome.result.assign(reports[i].result, reports[i].result + reports[i].result_bytes);
  }
  munmap(reports, sizeof(RankReport) * ranks.size());
  return outcomes;
}

std::vector<int> all_ranks(int world) {
  std::vector<int> ranks;
  for (int rank = 0; rank < world; ++rank) ranks.push_back(rank);
  return ranks;
}

float value_of(int rank, size_t i) { return float(i % 97) + float(3 * rank); }

// Every collective on every size, checked inside the ranks; any wrong element is reported as an
// error message naming the collective.
void check_collectives(TcpCommunicator& comm, RankReport&) {
  const int world = comm.size();
  const int rank = comm.rank();
  for (size_t count : {size_t(1), size_t(7), size_t(1000), size_t(1) << 20}) {
    std::vector<float> data(count);
    for (size_t i = 0; i < count; ++i) data[i] = value_of(rank, i);
    comm.all_reduce_sum(data.data(), count);
    for (size_t i = 0; i < count; ++i) {
      if (data[i] != float(world) * float(i % 97) + float(3 * world * (world - 1) / 2)) fail("all_reduce_sum {} at {}", count, i);
    }

    std::vector<float> mine(count), gathered(count * size_t(world));
    for (size_t i = 0; i < count; ++i) mine[i] = value_of(rank, i);
    comm.all_gather(mine.data(), gathered.data(), count);
    for (size_t i = 0; i < gathered.size(); ++i) {
      if (gathered[i] != value_of(int(i / count), i % count)) fail("all_gather {} at {}", count, i);
    }

    std::vector<float> send(count * size_t(world)), recv(count);
    for (size_t i = 0; i < send.size(); ++i) send[i] = value_of(rank, i);
    comm.reduce_scatter_sum(send.data(), recv.data(), count);
    for (size_t i = 0; i < count; ++i) {
      float expected = 0.0f;
      for (int other = 0; other < world; ++other) expected += value_of(other, size_t(rank) * count + i);
      if (recv[i] != expected) fail("reduce_scatter_sum {} at {}", count, i);
    }

    for (int root : {0, world - 1}) {
      std::vector<float> broadcast(count);
      for (size_t i = 0; i < count; ++i) broadcast[i] = value_of(rank, i);
      comm.broadcast(broadcast.data(), count, root);
      for (size_t i = 0; i < count; ++i) {
        if (broadcast[i] != value_of(root, i)) fail("broadcast {} from {} at {}", count, root, i);
      }
    }
    comm.barrier();
  }
}

void expect_all_finished(const std::vector<Outcome>& outcomes) {
  for (size_t i = 0; i < outcomes.size(); ++i) {
    EXPECT_TRUE(outcomes[i].exited) << "rank " << i;
    EXPECT_EQ(outcomes[i].finished, 1) << "rank " << i << ": " << outcomes[i].message;
  }
}

TEST(TcpCommunicator, EveryCollectiveOnTwoAndThreeProcesses) {
  for (int world : {2, 3}) {
    expect_all_finished(run_ranks(world, all_ranks(world), CommOptions{milliseconds(10'000)}, check_collectives));
  }
}

TEST(TcpCommunicator, WorldOfOneNeedsNoPeers) {
  const auto comm = TcpCommunicator::connect({0, 1, "127.0.0.1", free_port(), {}});
  std::vector<float> data = {1.0f, 2.0f}, gathered(2);
  comm->all_reduce_sum(data.data(), 2);
  comm->all_gather(data.data(), gathered.data(), 2);
  comm->barrier();
  EXPECT_EQ(data, (std::vector<float>{1.0f, 2.0f}));
  EXPECT_EQ(gathered, data);
}

// Random data of mixed magnitudes: rank order matters for the rounding, and every rank must hold
// exactly the rank-order sum.
TEST(TcpCommunicator, AllReduceIsBitIdenticalAcrossProcessesAndSumsInRankOrder) {
  const int world = 3;
  const size_t count = 100003;
  const auto data_of = [&](int rank) {
    std::mt19937 random(1000 + rank);
    std::normal_distribution<float> normal(0.0f, 1e3f);
    std::vector<float> data(count);
    for (float& value : data) value = normal(random) * std::pow(10.0f, float(rank - 1));
    return data;
  };
  std::vector<float> expected = data_of(0);
  for (int rank = 1; rank < world; ++rank) {
    const std::vector<float> data = data_of(rank);
    for (size_t i = 0; i < count; ++i) expected[i] += data[i];
  }
  const std::vector<Outcome> outcomes =
      run_ranks(world, all_ranks(world), CommOptions{milliseconds(10'000)}, [&](TcpCommunicator& comm, RankReport& report) {
        std::vector<float> data = data_of(comm.rank());
        comm.all_reduce_sum(data.data(), count);
        save_result(report, data.data(), count * sizeof(float));
      });
  expect_all_finished(outcomes);
  for (const Outcome& outcome : outcomes) {
    ASSERT_EQ(outcome.result.size(), count * sizeof(float));
    EXPECT_EQ(std::memcmp(outcome.result.data(), expected.data(), count * sizeof(float)), 0);
  }
}

TEST(TcpCommunicator, Bf16AllReduceMatchesTheRankOrderF32Sum) {
  const int world = 2;
  const size_t count = 513;
  const auto data_of = [&](int rank) {
    std::vector<uint16_t> data(count);
    for (size_t i = 0; i < count; ++i) data[i] = f32_to_bf16(std::sin(float(i + 1) * float(rank + 1)) * 3.0f);
    return data;
  };
  std::vector<uint16_t> expected(count);
  for (size_t i = 0; i < count; ++i) expected[i] = f32_to_bf16(bf16_to_f32(data_of(0)[i]) + bf16_to_f32(data_of(1)[i]));
  const std::vector<Outcome> outcomes =
      run_ranks(world, all_ranks(world), {}, [&](TcpCommunicator& comm, RankReport& report) {
        std::vector<uint16_t> data = data_of(comm.rank());
        comm.all_reduce_sum(data.data(), count, DType::BF16);
        save_result(report, data.data(), count * sizeof(uint16_t));
      });
  expect_all_finished(outcomes);
  for (const Outcome& outcome : outcomes) {
    EXPECT_EQ(std::memcmp(outcome.result.data(), expected.data(), count * sizeof(uint16_t)), 0);
  }
}

// ---------------------------------------------------------------------------------------------
// Failures. The timeout is 30 s wherever the failure must be noticed by other means.

const CommOptions kLongTimeout{milliseconds(30'000)};

// Runs two all-reduces; `rank_action` runs on every rank between them.
RankBody two_all_reduces(const std::function<void(TcpCommunicator&)>& rank_action) {
  return [rank_action](TcpCommunicator& comm, RankReport&) {
    std::vector<float> data(4096, 1.0f);
    comm.all_reduce_sum(data.data(), data.size());
    rank_action(comm);
    comm.all_reduce_sum(data.data(), data.size());
  };
}

void expect_failed_quickly(const Outcome& outcome, double max_seconds, const std::string& part) {
  EXPECT_EQ(outcome.finished, 2) << outcome.message;
  EXPECT_EQ(outcome.exit_code, 1);
  EXPECT_LT(outcome.seconds, max_seconds) << outcome.message;
  EXPECT_CONTAINS(outcome.message, part);
}

TEST(TcpCommunicatorFailures, RankThatExitsMidRunFailsTheOthersAtOnce) {
  const std::vector<Outcome> outcomes = run_ranks(3, all_ranks(3), kLongTimeout, two_all_reduces([](TcpCommunicator& comm) {
                                                    if (comm.rank() == 2) _exit(3);
                                                  }));
  EXPECT_EQ(outcomes[2].exit_code, 3);
  const std::string expected = "process group aborted: rank 2 closed its connection during all_reduce_sum(4096 x F32) #2";
  expect_failed_quickly(outcomes[0], 5.0, expected);
  expect_failed_quickly(outcomes[1], 5.0, expected);
  EXPECT_EQ(outcomes[0].message, outcomes[1].message);  // rank 0 relayed its reason
}

TEST(TcpCommunicatorFailures, RankThatThrowsTellsEveryRankWhy) {
  const std::vector<Outcome> outcomes = run_ranks(3, all_ranks(3), kLongTimeout, two_all_reduces([](TcpCommunicator& comm) {
                                                    if (comm.rank() == 1) throw Error("out of memory loading layer 7");
                                                  }));
  for (const Outcome& outcome : outcomes) {
    EXPECT_EQ(outcome.finished, 2);
    EXPECT_LT(outcome.seconds, 5.0);
  }
  EXPECT_EQ(outcomes[1].message, "out of memory loading layer 7");
  EXPECT_EQ(outcomes[0].message, "process group aborted: rank 1 aborted: out of memory loading layer 7");
  EXPECT_EQ(outcomes[2].message, outcomes[0].message);
}

TEST(TcpCommunicatorFailures, KilledRankIsNoticedByItsClosedSocket) {
  const std::vector<Outcome> outcomes = run_ranks(
      3, all_ranks(3), kLongTimeout, two_all_reduces([](TcpCommunicator& comm) {
        if (comm.rank() == 1) std::this_thread::sleep_for(milliseconds(60'000));
      }),
      [](const std::vector<pid_t>& pids) {
        std::this_thread::sleep_for(milliseconds(500));
        kill(pids[1], SIGKILL);
      });
  EXPECT_FALSE(outcomes[1].exited);
  // Rank 0 waits for rank 1 itself, so it sees the closed connection directly...
  expect_failed_quickly(outcomes[0], 5.0, "rank 1 closed its connection during all_reduce_sum(4096 x F32) #2");
  // ...and rank 2, which had already sent its part, hears it from rank 0.
  EXPECT_EQ(outcomes[2].message, outcomes[0].message);
}

TEST(TcpCommunicatorFailures, KilledRankZeroFailsEveryOtherRank) {
  const std::vector<Outcome> outcomes = run_ranks(
      3, all_ranks(3), kLongTimeout, two_all_reduces([](TcpCommunicator& comm) {
        if (comm.rank() == 0) std::this_thread::sleep_for(milliseconds(60'000));
      }),
      [](const std::vector<pid_t>& pids) {
        std::this_thread::sleep_for(milliseconds(500));
        kill(pids[0], SIGKILL);
      });
  for (int rank : {1, 2}) {
    expect_failed_quickly(outcomes[size_t(rank)], 5.0,
                          "connection to rank 0 closed during all_reduce_sum(4096 x F32) #2 (rank 0 exited or crashed)");
  }
}

TEST(TcpCommunicatorFailures, HungRankTimesOutAndRankZeroNamesIt) {
  const std::vector<Outcome> outcomes = run_ranks(
      3, all_ranks(3), CommOptions{milliseconds(1'000)}, two_all_reduces([](TcpCommunicator& comm) {
        if (comm.rank() == 1) std::this_thread::sleep_for(milliseconds(60'000));
      }),
      [](const std::vector<pid_t>& pids) {
        std::this_thread::sleep_for(milliseconds(3'000));
        kill(pids[1], SIGKILL);  // the hung rank would otherwise sleep on
      });
  const std::string expected = "process group aborted: rank 0 waited 1.0 s for rank 1 during all_reduce_sum(4096 x F32) #2";
  expect_failed_quickly(outcomes[0], 2.5, expected);
  EXPECT_GE(outcomes[0].seconds, 1.0);
  EXPECT_EQ(outcomes[2].message, outcomes[0].message);
}

TEST(TcpCommunicatorFailures, MismatchedCollectivesAreAnErrorOnEveryRank) {
  const std::vector<Outcome> outcomes = run_ranks(3, all_ranks(3), kLongTimeout, [](TcpCommunicator& comm, RankReport&) {
    std::vector<float> data(8, 1.0f), gathered(24);
    if (comm.rank() == 2) {
      comm.all_gather(data.data(), gathered.data(), 8);
    } else {
      comm.all_reduce_sum(data.data(), 8);
    }
  });
  const std::string expected =
      "process group aborted: collective mismatch: rank 0 called all_reduce_sum(8 x F32) #1, rank 2 called all_gather(8 x F32) #1";
  for (const Outcome& outcome : outcomes) expect_failed_quickly(outcome, 5.0, expected);
}

TEST(TcpCommunicatorFailures, RendezvousWithDisagreeingWorldSizes) {
  const std::vector<Outcome> outcomes =
      run_ranks(2, all_ranks(2), CommOptions{milliseconds(5'000)}, [](TcpCommunicator&, RankReport&) {}, nullptr,
                milliseconds(20'000), /*claimed_world=*/3);
  const std::string expected = "rank 1 was started with a world of 3 ranks, rank 0 with 2";
  expect_failed_quickly(outcomes[0], 4.0, expected);
  expect_failed_quickly(outcomes[1], 4.0, expected);
}

TEST(TcpCommunicatorFailures, RendezvousNamesTheRanksThatNeverJoined) {
  const std::vector<Outcome> outcomes =
      run_ranks(3, {0, 1}, CommOptions{milliseconds(500)}, [](TcpCommunicator&, RankReport&) {});
  const std::string expected = "2 of 3 ranks joined within 500 ms; missing rank(s) 2";
  expect_failed_quickly(outcomes[0], 2.0, expected);
  expect_failed_quickly(outcomes[1], 2.0, expected);
}

TEST(TcpCommunicatorFailures, NoRankZeroToConnectTo) {
  const auto start = Clock::now();
  try {
    TcpCommunicator::connect({1, 2, "127.0.0.1", free_port(), CommOptions{milliseconds(300)}});
    ADD_FAILURE() << "connect must fail";
  } catch (const Error& error) {
    EXPECT_CONTAINS(error.what(), "rank 1: rendezvous: could not connect to 127.0.0.1:");
    EXPECT_CONTAINS(error.what(), "(is rank 0 running?)");
  }
  EXPECT_LT(Clock::now() - start, milliseconds(2'000));
}

// abort() from another thread wakes a rank blocked in a collective (both ranks are threads here).
TEST(TcpCommunicatorFailures, AbortFromAnotherThreadWakesABlockedCollective) {
  const int port = free_port();
  std::unique_ptr<TcpCommunicator> rank0, rank1;
  std::thread connect0([&] { rank0 = TcpCommunicator::connect({0, 2, "127.0.0.1", port, kLongTimeout}); });
  rank1 = TcpCommunicator::connect({1, 2, "127.0.0.1", port, kLongTimeout});
  connect0.join();
  std::string error;
  const auto start = Clock::now();
  std::thread blocked([&] {
    std::vector<float> data(16, 1.0f);
    try {
      rank1->all_reduce_sum(data.data(), data.size());  // rank 0 never joins this one
    } catch (const Error& e) {
      error = e.what();
    }
  });
  std::this_thread::sleep_for(milliseconds(200));
  rank1->abort("interrupted by the user");
  blocked.join();
  EXPECT_EQ(error, "process group aborted: rank 1 aborted: interrupted by the user");
  EXPECT_LT(Clock::now() - start, milliseconds(2'000));
  // The group is over for rank 0 too: its next collective fails instead of waiting 30 s.
  std::vector<float> data(16, 1.0f);
  try {
    rank0->all_reduce_sum(data.data(), data.size());
    ADD_FAILURE() << "rank 0 must fail";
  } catch (const Error& e) {
    EXPECT_CONTAINS(e.what(), "rank 1");
  }
  EXPECT_LT(Clock::now() - start, milliseconds(3'000));
}

}  // namespace
}  // namespace shardlm
