// Tests for the thread-group communicator: every collective against values computed here, for
// world sizes 1, 2, 3, 4, 8 and sizes from 1 element to 1M; bit-identical results across ranks
// (random f32 and bf16 data, summed in rank order); and the failure paths, each timed: a rank that
// throws, a rank that leaves, a rank that never arrives, an outside abort(), and mismatched calls
// must all make the other ranks throw quickly instead of hanging.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <random>
#include <thread>

#include "error_message.h"
#include "core/error.h"
#include "parallel/comm/thread_group.h"

namespace shardlm {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

const std::vector<int> kWorldSizes = {1, 2, 3, 4, 8};
const std::vector<size_t> kCounts = {1, 2, 7, 1000, size_t(1) << 20};

// Integer-valued floats keep every sum exact, so results compare with ==.
float value_of(int rank, size_t i) { return float(i % 97) + float(3 * rank); }


TEST(ThreadGroupCollectives, AllReduceSum) {
  for (int world : kWorldSizes) {
    for (size_t count : kCounts) {
      std::vector<std::vector<float>> data(static_cast<size_t>(world));
      for (int rank = 0; rank < world; ++rank) {
        for (size_t i = 0; i < count; ++i) data[size_t(rank)].push_back(value_of(rank, i));
      }
      ThreadGroup::run(world, [&](Communicator& comm) { comm.all_reduce_sum(data[size_t(comm.rank())].data(), count); });
      for (int rank = 0; rank < world; ++rank) {
        for (size_t i = 0; i < count; ++i) {
          const float expected = float(world) * float(i % 97) + float(3 * world * (world - 1) / 2);
          ASSERT_EQ(data[size_t(rank)][i], expected) << "world " << world << " count " << count << " rank " << rank;
        }
      }
    }
  }
}

TEST(ThreadGroupCollectives, AllGather) {
  for (int world : kWorldSizes) {
    for (size_t count : kCounts) {
      std::vector<std::vector<float>> send(static_cast<size_t>(world)), recv(static_cast<size_t>(world), std::vector<float>(count * size_t(world), -1.0f));
      for (int rank = 0; rank < world; ++rank) {
        for (size_t i = 0; i < count; ++i) send[size_t(rank)].push_back(value_of(rank, i));
      }
      ThreadGroup::run(world, [&](Communicator& comm) {
        comm.all_gather(send[size_t(comm.rank())].data(), recv[size_t(comm.rank())].data(), count);
      });
      for (int rank = 0; rank < world; ++rank) {
        for (int block = 0; block < world; ++block) {
          for (size_t i = 0; i < count; ++i) ASSERT_EQ(recv[size_t(rank)][size_t(block) * count + i], value_of(block, i));
        }
      }
    }
  }
}

TEST(ThreadGroupCollectives, AllGatherInPlace) {
  const int world = 3;
  const size_t count = 5;
  std::vector<std::vector<float>> buffers(world, std::vector<float>(count * world, 0.0f));
  for (int rank = 0; rank < world; ++rank) {
    for (size_t i = 0; i < count; ++i) buffers[size_t(rank)][size_t(rank) * count + i] = value_of(rank, i);
  }
  ThreadGroup::run(world, [&](Communicator& comm) {
    float* mine = buffers[size_t(comm.rank())].data();
    comm.all_gather(mine + size_t(comm.rank()) * count, mine, count);
  });
  for (int rank = 0; rank < world; ++rank) {
    for (size_t j = 0; j < count * world; ++j) EXPECT_EQ(buffers[size_t(rank)][j], value_of(int(j / count), j % count));
  }
}

TEST(ThreadGroupCollectives, ReduceScatterSum) {
  for (int world : kWorldSizes) {
    for (size_t count : kCounts) {
      std::vector<std::vector<float>> send(static_cast<size_t>(world)), recv(static_cast<size_t>(world), std::vector<float>(count, -1.0f));
      for (int rank = 0; rank < world; ++rank) {
        for (size_t i = 0; i < count * size_t(world); ++i) send[size_t(rank)].push_back(value_of(rank, i));
      }
      ThreadGroup::run(world, [&](Communicator& comm) {
        comm.reduce_scatter_sum(send[size_t(comm.rank())].data(), recv[size_t(comm.rank())].data(), count);
      });
      for (int rank = 0; rank < world; ++rank) {
        for (size_t i = 0; i < count; ++i) {
          float expected = 0.0f;
          for (int other = 0; other < world; ++other) expected += value_of(other, size_t(rank) * count + i);
          ASSERT_EQ(recv[size_t(rank)][i], expected) << "world " << world << " count " << count;
        }
      }
    }
  }
}

TEST(ThreadGroupCollectives, BroadcastFromFirstAndLastRank) {
  for (int world : kWorldSizes) {
    for (int root : {0, world - 1}) {
      for (size_t count : {size_t(1), size_t(1000), size_t(1) << 20}) {
        std::vector<std::vector<float>> data(static_cast<size_t>(world));
        for (int rank = 0; rank < world; ++rank) {
          for (size_t i = 0; i < count; ++i) data[size_t(rank)].push_back(value_of(rank, i));
        }
        ThreadGroup::run(world, [&](Communicator& comm) { comm.broadcast(data[size_t(comm.rank())].data(), count, root); });
        for (int rank = 0; rank < world; ++rank) ASSERT_EQ(data[size_t(rank)], data[size_t(root)]);
        ASSERT_EQ(data[0][count - 1], value_of(root, count - 1));
      }
    }
  }
}

TEST(ThreadGroupCollectives, BarrierWaitsForEveryRank) {
  const int world = 4;
  std::atomic<int> before{0};
  std::atomic<int> wrong{0};
  ThreadGroup::run(world, [&](Communicator& comm) {
    for (int round = 1; round <= 50; ++round) {
      if (comm.rank() == round % world) std::this_thread::sleep_for(std::chrono::microseconds(200));
      before.fetch_add(1);
      comm.barrier();
      if (before.load() < round * world) wrong.fetch_add(1);
      comm.barrier();  // nobody starts the next round before everyone checked this one
    }
  });
  EXPECT_EQ(wrong.load(), 0);
}

// Random data: every rank must end with the same bytes, equal to the sum taken in rank order.
TEST(ThreadGroupCollectives, AllReduceIsBitIdenticalAcrossRanksAndSumsInRankOrder) {
  const int world = 8;
  const size_t count = 10007;
  std::vector<std::vector<float>> data(world);
  std::mt19937 random(42);
  std::normal_distribution<float> normal(0.0f, 1e3f);
  for (int rank = 0; rank < world; ++rank) {
    for (size_t i = 0; i < count; ++i) data[size_t(rank)].push_back(normal(random) * std::pow(10.0f, float(rank % 4 - 2)));
  }
  std::vector<float> expected = data[0];
  for (int rank = 1; rank < world; ++rank) {
    for (size_t i = 0; i < count; ++i) expected[i] += data[size_t(rank)][i];
  }
  ThreadGroup::run(world, [&](Communicator& comm) { comm.all_reduce_sum(data[size_t(comm.rank())].data(), count); });
  for (int rank = 0; rank < world; ++rank) {
    ASSERT_EQ(std::memcmp(data[size_t(rank)].data(), expected.data(), count * sizeof(float)), 0) << "rank " << rank;
  }
}

TEST(ThreadGroupCollectives, Bf16AllReduceAccumulatesInF32AndRoundsOnce) {
  const int world = 3;
  const size_t count = 4099;
  std::vector<std::vector<uint16_t>> data(world);
  std::mt19937 random(7);
  std::uniform_real_distribution<float> uniform(-4.0f, 4.0f);
  for (int rank = 0; rank < world; ++rank) {
    for (size_t i = 0; i < count; ++i) data[size_t(rank)].push_back(f32_to_bf16(uniform(random)));
  }
  std::vector<uint16_t> expected(count);
  for (size_t i = 0; i < count; ++i) {
    float sum = bf16_to_f32(data[0][i]);
    for (int rank = 1; rank < world; ++rank) sum += bf16_to_f32(data[size_t(rank)][i]);
    expected[i] = f32_to_bf16(sum);
  }
  ThreadGroup::run(world, [&](Communicator& comm) {
    comm.all_reduce_sum(data[size_t(comm.rank())].data(), count, DType::BF16);
  });
  for (int rank = 0; rank < world; ++rank) EXPECT_EQ(data[size_t(rank)], expected);
}

// ---------------------------------------------------------------------------------------------
// Failures: the survivors must throw, fast.

TEST(ThreadGroupFailures, RankThatThrowsMidRunStopsTheOthers) {
  const auto start = Clock::now();
  const std::string message = error_message([] {
    ThreadGroup::run(
        4,
        [](Communicator& comm) {
          std::vector<float> data(1000, 1.0f);
          comm.all_reduce_sum(data.data(), data.size());
          if (comm.rank() == 2) throw Error("boom");
          for (int step = 0; step < 3; ++step) comm.all_reduce_sum(data.data(), data.size());
        },
        CommOptions{milliseconds(30'000)});
  });
  EXPECT_EQ(message, "thread group aborted: rank 2 failed: boom");
  EXPECT_LT(Clock::now() - start, milliseconds(2'000));  // not the 30 s timeout
}

TEST(ThreadGroupFailures, RankThatLeavesEarlyFailsThoseWaitingForIt) {
  const auto start = Clock::now();
  const std::string message = error_message([] {
    ThreadGroup::run(
        3,
        [](Communicator& comm) {
          if (comm.rank() == 1) return;
          std::vector<float> data(10, 1.0f);
          comm.all_reduce_sum(data.data(), data.size());
        },
        CommOptions{milliseconds(30'000)});
  });
  EXPECT_CONTAINS(message, "rank 1 left the group while rank");
  EXPECT_CONTAINS(message, "waits in all_reduce_sum(10 x F32)");
  EXPECT_LT(Clock::now() - start, milliseconds(2'000));
}

TEST(ThreadGroupFailures, RankThatNeverArrivesTimesOut) {
  const auto group = ThreadGroup::create(3, CommOptions{milliseconds(300)});
  std::vector<std::string> errors(2);
  const auto start = Clock::now();
  std::vector<std::thread> threads;
  for (int rank = 0; rank < 2; ++rank) {
    threads.emplace_back([&, rank] {
      std::vector<float> data(4, 1.0f);
      errors[size_t(rank)] = error_message([&] { group->communicator(rank).all_reduce_sum(data.data(), data.size()); });
    });
  }
  for (std::thread& thread : threads) thread.join();
  const auto elapsed = Clock::now() - start;
  for (const std::string& error : errors) {
    EXPECT_CONTAINS(error, "waited 300 ms in all_reduce_sum(4 x F32) for rank(s) 2, which did not arrive");
  }
  EXPECT_GE(elapsed, milliseconds(300));
  EXPECT_LT(elapsed, milliseconds(2'000));
  // The group stays dead: a late rank fails at once rather than waiting for a new round.
  std::vector<float> late(4, 1.0f);
  EXPECT_CONTAINS(error_message([&] { group->communicator(2).all_reduce_sum(late.data(), late.size()); }), "did not arrive");
}

TEST(ThreadGroupFailures, AbortWakesEveryWaiter) {
  const auto group = ThreadGroup::create(4, CommOptions{milliseconds(30'000)});
  std::vector<std::string> errors(3);
  std::vector<std::thread> threads;
  const auto start = Clock::now();
  for (int rank = 0; rank < 3; ++rank) {
    threads.emplace_back([&, rank] {
      std::vector<float> data(64, 1.0f);
      errors[size_t(rank)] = error_message([&] { group->communicator(rank).all_reduce_sum(data.data(), data.size()); });
    });
  }
  std::this_thread::sleep_for(milliseconds(100));
  group->abort("operator stopped the run");
  for (std::thread& thread : threads) thread.join();
  for (const std::string& error : errors) EXPECT_EQ(error, "thread group aborted: operator stopped the run");
  EXPECT_LT(Clock::now() - start, milliseconds(2'000));
}

TEST(ThreadGroupFailures, CommunicatorAbortNamesTheRank) {
  const std::string message = error_message([] {
    ThreadGroup::run(2, [](Communicator& comm) {
      if (comm.rank() == 0) comm.abort("out of memory");
      comm.barrier();
    });
  });
  EXPECT_CONTAINS(message, "thread group aborted: rank 0 aborted: out of memory");
}

TEST(ThreadGroupFailures, MismatchedCollectivesAreAnErrorNotAHang) {
  const auto start = Clock::now();
  const std::string message = error_message([] {
    ThreadGroup::run(
        2,
        [](Communicator& comm) {
          std::vector<float> data(8, 1.0f), gathered(16);
          if (comm.rank() == 0) {
            comm.all_reduce_sum(data.data(), data.size());
          } else {
            comm.all_gather(data.data(), gathered.data(), data.size());
          }
        },
        CommOptions{milliseconds(30'000)});
  });
  EXPECT_CONTAINS(message, "collective mismatch: rank 0 called all_reduce_sum(8 x F32), rank 1 called all_gather(8 x F32)");
  EXPECT_LT(Clock::now() - start, milliseconds(2'000));
}

TEST(ThreadGroupFailures, BadArguments) {
  EXPECT_CONTAINS(error_message([] { ThreadGroup::create(0); }), "size 0 must be at least 1");
  const auto group = ThreadGroup::create(2);
  EXPECT_CONTAINS(error_message([&] { group->communicator(2); }), "rank 2 outside a group of 2");
  float value = 0.0f;
  EXPECT_EQ(error_message([&] { group->communicator(0).broadcast(&value, 1, 5); }),
            "broadcast: root 5 is outside a group of 2 ranks");
  EXPECT_EQ(error_message([&] { group->communicator(0).all_reduce_sum(static_cast<float*>(nullptr), 3); }),
            "all_reduce_sum: data is null for 3 elements");
}

}  // namespace
}  // namespace shardlm
