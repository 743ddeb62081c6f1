// The server's engine thread over tensor-parallel ranks: while no request comes, it keeps the
// follower ranks (which wait for each step with a time limit) from giving the group up, so the
// first request after a long idle spell runs on every rank and gives what one rank gives.
#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "engine/engine.h"
#include "runtime/generator.h"
#include "runtime/scheduler.h"
#include "serve/engine_loop.h"
#include "tokenizer/tokenizer.h"

namespace shardlm {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

const fs::path kFixture = fs::path(SHARDLM_FIXTURES_DIR) / "models" / "llama-gqa-llama3rope-f32";

std::unique_ptr<Engine> open_engine(int tp) {
  EngineOptions options;
  options.model_dir = kFixture;
  options.max_sequences = 1;
  options.max_seq_len = 64;
  options.tp = tp;
  options.comm_timeout = 200ms;
  return Engine::open(options);
}

TEST(EngineLoop, IdleFollowerRanksKeepWaitingForTheNextRequest) {
  const Tokenizer tokenizer = Tokenizer::from_dir(kFixture);
  const std::vector<int32_t> prompt = {603, 297, 386, 393, 11, 320, 368, 383, 295};
  GenerationOptions alone_options;
  alone_options.max_new_tokens = 6;
  const std::unique_ptr<Engine> one_rank = open_engine(1);
  const std::vector<int32_t> expected = generate(*one_rank, tokenizer, {prompt}, alone_options).at(0).output_ids;

  const std::unique_ptr<Engine> engine = open_engine(2);
  Scheduler scheduler(*engine, tokenizer, SchedulerOptions{64});
  serve::EngineLoop loop(scheduler);
  std::this_thread::sleep_for(1s);  // five of the followers' time limits with nothing to run

  std::mutex mutex;
  std::condition_variable done;
  std::vector<int32_t> tokens;
  bool finished = false;
  std::string failure;
  serve::RequestSink sink;
  sink.on_update = [&](const RequestUpdate& update) {
    const std::lock_guard lock(mutex);
    tokens.push_back(update.token);
    finished = update.finished;
    done.notify_one();
  };
  sink.on_error = [&](int status, const std::string& message, const std::string&) {
    const std::lock_guard lock(mutex);
    failure = std::to_string(status) + " " + message;
    finished = true;
    done.notify_one();
  };
  loop.submit(SchedulerRequest{prompt, 6, {}, {}, {}}, std::move(sink));
  std::unique_lock lock(mutex);
  ASSERT_TRUE(done.wait_for(lock, 60s, [&] { return finished; }));
  EXPECT_EQ(failure, "");
  EXPECT_EQ(tokens, expected);
}

}  // namespace
}  // namespace shardlm
