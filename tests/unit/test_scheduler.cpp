// Continuous batching: 32 requests of different prompt lengths and token budgets share an engine of
// 8 slots with a small token budget per step (so prompts are prefilled in chunks beside running
// decodes, and most requests wait for a slot); greedy outputs equal generate() of each prompt alone.
// Cancellation frees a slot within the step, KV usage counts the positions running sequences hold,
// and requests that cannot run are refused by field.
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <memory>
#include <vector>

#include "engine/engine.h"
#include "error_message.h"
#include "runtime/generator.h"
#include "runtime/scheduler.h"
#include "tokenizer/tokenizer.h"

namespace shardlm {
namespace {

namespace fs = std::filesystem;

const fs::path kFixture = fs::path(SHARDLM_FIXTURES_DIR) / "models" / "llama-gqa-llama3rope-f32";

std::unique_ptr<Engine> open_engine(int max_sequences) {
  EngineOptions options;
  options.model_dir = kFixture;
  options.max_sequences = max_sequences;
  options.max_seq_len = 96;
  return Engine::open(options);
}

std::vector<int32_t> prompt(int length, int salt) {
  std::vector<int32_t> tokens;
  for (int i = 0; i < length; ++i) tokens.push_back((i * 37 + salt * 11 + 5) % 600);
  return tokens;
}

struct Outcome {
  std::vector<int32_t> tokens;
  std::string text;
  std::string finish_reason;
};

TEST(Scheduler, ThirtyTwoConcurrentRequestsMatchEachAlone) {
  const Tokenizer tokenizer = Tokenizer::from_dir(kFixture);
  const std::unique_ptr<Engine> engine = open_engine(8);
  Scheduler scheduler(*engine, tokenizer, SchedulerOptions{24});
  std::vector<SchedulerRequest> requests;
  std::map<uint64_t, size_t> index_of;
  for (int i = 0; i < 32; ++i) {
    SchedulerRequest request;
    request.prompt = prompt(1 + (i * 7) % 60, i);
    request.max_tokens = 1 + (i * 5) % 24;
    if (i % 5 == 0) request.stop = {"e"};
    requests.push_back(request);
    index_of[scheduler.submit(request)] = size_t(i);
  }
  std::vector<Outcome> served(requests.size());
  size_t most_running = 0;
  int steps = 0;
  while (scheduler.has_work()) {
    for (const RequestUpdate& update : scheduler.step()) {
      Outcome& outcome = served[index_of.at(update.id)];
      outcome.tokens.push_back(update.token);
      outcome.text += update.text;
      if (update.finished) outcome.finish_reason = update.finish_reason;
    }
    most_running = std::max(most_running, scheduler.running());
    ASSERT_LT(++steps, 2000);
  }
  EXPECT_EQ(most_running, 8u) << "every slot in use at some step";

  const std::unique_ptr<Engine> alone = open_engine(1);
  for (size_t i = 0; i < requests.size(); ++i) {
    GenerationOptions options;
    options.max_new_tokens = requests[i].max_tokens;
    options.stop = requests[i].stop;
    const GenerationResult expected = generate(*alone, tokenizer, {requests[i].prompt}, options).at(0);
    EXPECT_EQ(served[i].tokens, expected.output_ids) << "request " << i;
    EXPECT_EQ(served[i].text, expected.text) << "request " << i;
    EXPECT_EQ(served[i].finish_reason, expected.finish_reason) << "request " << i;
  }
}

TEST(Scheduler, ALongPromptIsPrefilledInChunksWhileAStreamKeepsDecoding) {
  const Tokenizer tokenizer = Tokenizer::from_dir(kFixture);
  const std::unique_ptr<Engine> engine = open_engine(2);
  Scheduler scheduler(*engine, tokenizer, SchedulerOptions{8});
  SchedulerRequest stream{prompt(4, 1), 40, {}, {}, {}};
  const uint64_t stream_id = scheduler.submit(stream);
  scheduler.step();  // its prompt; it decodes from now on
  const uint64_t long_id = scheduler.submit(SchedulerRequest{prompt(70, 2), 4, {}, {}, {}});
  int stream_tokens = 0, steps_until_long_token = 0;
  bool long_started = false;
  while (!long_started) {
    ++steps_until_long_token;
    for (const RequestUpdate& update : scheduler.step()) {
      if (update.id == stream_id) ++stream_tokens;
      if (update.id == long_id) long_started = true;
    }
  }
  // 70 prompt tokens at 7 per step (one of the 8 goes to the stream): 10 steps, each with a token
  // for the stream.
  EXPECT_EQ(steps_until_long_token, 10);
  EXPECT_EQ(stream_tokens, 10);
}

TEST(Scheduler, CancellingFreesTheSlotForTheNextRequest) {
  const Tokenizer tokenizer = Tokenizer::from_dir(kFixture);
  const std::unique_ptr<Engine> engine = open_engine(1);
  Scheduler scheduler(*engine, tokenizer, SchedulerOptions{64});
  const uint64_t first = scheduler.submit(SchedulerRequest{prompt(5, 1), 50, {}, {}, {}});
  const uint64_t second = scheduler.submit(SchedulerRequest{prompt(5, 2), 3, {}, {}, {}});
  scheduler.step();
  EXPECT_EQ(scheduler.running(), 1u);
  EXPECT_EQ(scheduler.waiting(), 1u);
  scheduler.cancel(first);
  EXPECT_EQ(scheduler.running(), 0u);
  const std::vector<RequestUpdate> updates = scheduler.step();
  ASSERT_EQ(updates.size(), 1u);
  EXPECT_EQ(updates[0].id, second);
  scheduler.cancel(12345);  // unknown: ignored
}

TEST(Scheduler, KvCacheUsageIsThePositionsRunningSequencesHoldOverAllSlots) {
  const Tokenizer tokenizer = Tokenizer::from_dir(kFixture);
  const std::unique_ptr<Engine> engine = open_engine(2);  // 2 slots of 96 tokens: 192 positions
  Scheduler scheduler(*engine, tokenizer, SchedulerOptions{64});
  EXPECT_EQ(scheduler.kv_cache_usage(), 0.0);
  const uint64_t first = scheduler.submit(SchedulerRequest{prompt(10, 1), 5, {}, {}, {}});
  scheduler.submit(SchedulerRequest{prompt(20, 2), 5, {}, {}, {}});
  EXPECT_EQ(scheduler.kv_cache_usage(), 0.0) << "a waiting request holds no positions";
  scheduler.step();  // both prompts
  EXPECT_DOUBLE_EQ(scheduler.kv_cache_usage(), 30.0 / 192);
  scheduler.step();  // a token each
  EXPECT_DOUBLE_EQ(scheduler.kv_cache_usage(), 32.0 / 192);
  scheduler.cancel(first);
  EXPECT_DOUBLE_EQ(scheduler.kv_cache_usage(), 21.0 / 192);
}

TEST(Scheduler, RequestsThatCannotRunAreRefusedByField) {
  const Tokenizer tokenizer = Tokenizer::from_dir(kFixture);
  const std::unique_ptr<Engine> engine = open_engine(1);
  Scheduler scheduler(*engine, tokenizer, SchedulerOptions{64});
  EXPECT_ERROR_NAMES(scheduler.submit(SchedulerRequest{{}, 4, {}, {}, {}}), "prompt: the prompt has no tokens");
  EXPECT_ERROR_NAMES(scheduler.submit(SchedulerRequest{prompt(3, 1), 0, {}, {}, {}}), "max_tokens must be >= 1");
  EXPECT_ERROR_NAMES(scheduler.submit(SchedulerRequest{prompt(90, 1), 10, {}, {}, {}}),
                     "prompt's 90 tokens plus max_tokens 10 exceed the 96 tokens");
  EXPECT_ERROR_NAMES(scheduler.submit(SchedulerRequest{{1, 999999}, 4, {}, {}, {}}), "token id 999999");
  SchedulerRequest negative{prompt(3, 1), 4, {}, {}, {}};
  negative.sampling.temperature = -1.0f;
  EXPECT_THROW(scheduler.submit(negative), Error);
  EXPECT_FALSE(scheduler.has_work());
}

}  // namespace
}  // namespace shardlm
