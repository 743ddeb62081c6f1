// Continuous batching: 32 requests of different prompt lengths and token budgets share an engine of
// 8 slots with a small token budget per step (so prompts are prefilled in chunks beside running
// decodes, and most requests wait for a slot); greedy outputs equal generate() of each prompt alone.
// Cancellation frees a slot within the step, KV usage counts the blocks sequences hold, a KV cache
// too small for every running request preempts and recomputes without changing a token, a prompt
// that starts as an earlier one did reuses its cached blocks (same tokens), a request asking for its
// prompt's log-probabilities gets them with its first token, and requests that cannot run are
// refused by field.
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <memory>
#include <vector>

#include "engine/engine.h"
#include "error_message.h"
#include "tiny_moe_model.h"
#include "runtime/generator.h"
#include "runtime/scheduler.h"
#include "tokenizer/tokenizer.h"

namespace shardlm {
namespace {

namespace fs = std::filesystem;

const fs::path kFixture = fs::path(SHARDLM_FIXTURES_DIR) / "models" / "llama-gqa-llama3rope-f32";

// 96 tokens a sequence: 6 blocks of 16. kv_cache_tokens 0: enough blocks for every slot.
std::unique_ptr<Engine> open_engine(int max_sequences, int64_t kv_cache_tokens = 0, bool prefix_caching = true,
                                    const fs::path& model = kFixture) {
  EngineOptions options;
  options.model_dir = model;
  options.max_sequences = max_sequences;
  options.max_seq_len = 96;
  options.kv_cache_tokens = kv_cache_tokens;
  options.prefix_caching = prefix_caching;
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

// Submits the requests and steps until all have finished; outcomes in request order.
std::vector<Outcome> serve_all(Scheduler& scheduler, const std::vector<SchedulerRequest>& requests) {
  std::map<uint64_t, size_t> index_of;
  for (size_t i = 0; i < requests.size(); ++i) index_of[scheduler.submit(requests[i])] = i;
  std::vector<Outcome> served(requests.size());
  for (int steps = 0; scheduler.has_work(); ++steps) {
    if (steps > 4000) {
      ADD_FAILURE() << "the requests did not finish in 4000 steps";
      break;
    }
    for (const RequestUpdate& update : scheduler.step()) {
      Outcome& outcome = served[index_of.at(update.id)];
      outcome.tokens.push_back(update.token);
      outcome.text += update.text;
      if (update.finished) outcome.finish_reason = update.finish_reason;
    }
  }
  return served;
}

// What generate() gives each request run alone on a fresh engine.
std::vector<std::vector<int32_t>> alone_outputs(const Tokenizer& tokenizer, const std::vector<SchedulerRequest>& requests,
                                                const fs::path& model = kFixture) {
  const std::unique_ptr<Engine> alone = open_engine(1, 0, false, model);
  std::vector<std::vector<int32_t>> outputs;
  for (const SchedulerRequest& request : requests) {
    GenerationOptions options;
    options.max_new_tokens = request.max_tokens;
    options.stop = request.stop;
    outputs.push_back(generate(*alone, tokenizer, {request.prompt}, options).at(0).output_ids);
  }
  return outputs;
}

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

TEST(Scheduler, AMixtureOfExpertsModelServesConcurrentRequestsAsEachAlone) {
  // Qwen3-MoE (top 2 of 8 experts, a dense middle layer): a row's experts must not depend on the
  // rows beside it in a step.
  test::TinyMoe moe;
  moe.mlp_only_layers = {1};
  const fs::path model = test::write_tiny_moe_with_tokenizer(moe, "scheduler", kFixture);
  const Tokenizer tokenizer = Tokenizer::from_dir(model);
  const std::unique_ptr<Engine> engine = open_engine(6, 0, true, model);
  Scheduler scheduler(*engine, tokenizer, SchedulerOptions{20});
  std::vector<SchedulerRequest> requests;
  for (int i = 0; i < 12; ++i) requests.push_back({prompt(1 + (i * 11) % 50, i), 2 + (i * 3) % 12, {}, {}, {}});
  const std::vector<Outcome> served = serve_all(scheduler, requests);
  const std::vector<std::vector<int32_t>> expected = alone_outputs(tokenizer, requests, model);
  for (size_t i = 0; i < requests.size(); ++i) EXPECT_EQ(served[i].tokens, expected[i]) << "request " << i;
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

TEST(Scheduler, KvCacheUsageIsTheBlocksSequencesHold) {
  const Tokenizer tokenizer = Tokenizer::from_dir(kFixture);
  const std::unique_ptr<Engine> engine = open_engine(2);  // 2 slots of 6 blocks: 12 blocks of 16
  Scheduler scheduler(*engine, tokenizer, SchedulerOptions{64});
  EXPECT_EQ(scheduler.kv_cache_usage(), 0.0);
  const uint64_t first = scheduler.submit(SchedulerRequest{prompt(16, 1), 5, {}, {}, {}});
  scheduler.submit(SchedulerRequest{prompt(20, 2), 5, {}, {}, {}});
  EXPECT_EQ(scheduler.kv_cache_usage(), 0.0) << "a waiting request holds no blocks";
  scheduler.step();  // both prompts: 16 tokens in one block, 20 in two
  EXPECT_DOUBLE_EQ(scheduler.kv_cache_usage(), 3.0 / 12);
  scheduler.step();  // a token each: the first needs its second block
  EXPECT_DOUBLE_EQ(scheduler.kv_cache_usage(), 4.0 / 12);
  scheduler.cancel(first);  // its full block stays cached, but free to take
  EXPECT_DOUBLE_EQ(scheduler.kv_cache_usage(), 2.0 / 12);
}

TEST(Scheduler, AFullKvCachePreemptsTheNewestAndChangesNoToken) {
  // 8 blocks (128 tokens) for 4 requests that grow to 50-70 tokens (4-5 blocks) each: at most one
  // or two run at a time, the others are preempted and recomputed.
  const Tokenizer tokenizer = Tokenizer::from_dir(kFixture);
  const std::unique_ptr<Engine> engine = open_engine(4, 128);
  EXPECT_EQ(engine->kv_blocks().num_blocks(), 8);
  Scheduler scheduler(*engine, tokenizer, SchedulerOptions{64});
  std::vector<SchedulerRequest> requests;
  for (int i = 0; i < 4; ++i) requests.push_back(SchedulerRequest{prompt(20 + 10 * i, i), 30, {}, {}, {}});
  const std::vector<Outcome> served = serve_all(scheduler, requests);
  EXPECT_GT(scheduler.preemptions(), 0u);
  const std::vector<std::vector<int32_t>> expected = alone_outputs(tokenizer, requests);
  for (size_t i = 0; i < requests.size(); ++i) {
    EXPECT_EQ(served[i].tokens, expected[i]) << "request " << i;
    EXPECT_EQ(served[i].finish_reason, "length") << "request " << i;
  }
  EXPECT_EQ(engine->kv_blocks().used_blocks(), 0) << "every block is back";
}

TEST(Scheduler, APromptStartingAsAnEarlierOneReusesItsCachedBlocks) {
  const Tokenizer tokenizer = Tokenizer::from_dir(kFixture);
  const std::unique_ptr<Engine> engine = open_engine(2);
  Scheduler scheduler(*engine, tokenizer, SchedulerOptions{64});
  const std::vector<int32_t> shared = prompt(40, 7);  // two full blocks and 8 tokens
  std::vector<SchedulerRequest> requests = {SchedulerRequest{shared, 6, {}, {}, {}}};
  serve_all(scheduler, requests);
  const uint64_t hits_before = engine->kv_blocks().hit_tokens();
  // The same 40 tokens and then others: the two full blocks come from the cache.
  SchedulerRequest longer{shared, 6, {}, {}, {}};
  for (int32_t token : prompt(9, 3)) longer.prompt.push_back(token);
  // Exactly the cached prompt: its last token is computed, so only the first block is reused.
  SchedulerRequest block_aligned{std::vector<int32_t>(shared.begin(), shared.begin() + 32), 6, {}, {}, {}};
  const std::vector<Outcome> first = serve_all(scheduler, {longer});
  EXPECT_EQ(engine->kv_blocks().hit_tokens() - hits_before, 32u);
  const std::vector<Outcome> second = serve_all(scheduler, {block_aligned});
  EXPECT_EQ(engine->kv_blocks().hit_tokens() - hits_before, 48u);
  const std::vector<std::vector<int32_t>> expected = alone_outputs(tokenizer, {longer, block_aligned});
  EXPECT_EQ(first[0].tokens, expected[0]);
  EXPECT_EQ(second[0].tokens, expected[1]);
}

TEST(Scheduler, ARequestStartsOnlyWhenItsFirstChunkFitsBesideItsCachedPrefix) {
  const Tokenizer tokenizer = Tokenizer::from_dir(kFixture);
  const std::unique_ptr<Engine> engine = open_engine(2, 128);  // 8 blocks of 16
  Scheduler scheduler(*engine, tokenizer, SchedulerOptions{64});
  const std::vector<int32_t> shared = prompt(64, 4);  // four full blocks, cached once it has run
  serve_all(scheduler, {SchedulerRequest{shared, 1, {}, {}, {}}});
  SchedulerRequest longer{shared, 8, {}, {}, {}};
  for (int32_t token : prompt(24, 5)) longer.prompt.push_back(token);
  // The four cached blocks nobody holds leave the free count, and the rest of the prompt takes two.
  EXPECT_EQ(engine->kv_blocks_to_start(longer.prompt, 64), 6);
  EXPECT_EQ(engine->kv_blocks_to_start(longer.prompt, 4), 5) << "a first chunk of 4 tokens takes one";
  EXPECT_EQ(engine->kv_blocks_to_start(prompt(40, 6), 64), 3) << "nothing cached: 40 tokens in 3 blocks";
  EXPECT_EQ(engine->kv_blocks_to_start(prompt(40, 6), 16), 1) << "a first chunk of 16 tokens";
  EXPECT_EQ(engine->kv_blocks().hit_tokens(), 0u) << "looking is not taking";
  // Beside a request holding 3 blocks, 5 are free (one never used, four cached): `longer` waits,
  // without taking its prefix and giving it back every step, until the other has finished.
  const uint64_t queried_before = engine->kv_blocks().queried_tokens();
  const SchedulerRequest other{prompt(40, 6), 8, {}, {}, {}};
  const uint64_t first = scheduler.submit(other);
  const uint64_t second = scheduler.submit(longer);
  std::map<uint64_t, std::vector<int32_t>> tokens;
  int steps_waiting = 0;
  while (scheduler.has_work()) {
    for (const RequestUpdate& update : scheduler.step()) tokens[update.id].push_back(update.token);
    if (scheduler.waiting() == 1) ++steps_waiting;
    ASSERT_LT(steps_waiting, 100);
  }
  EXPECT_GE(steps_waiting, 7) << "longer waits while the other decodes its 8 tokens";
  EXPECT_EQ(scheduler.preemptions(), 0u);
  EXPECT_EQ(engine->kv_blocks().queried_tokens() - queried_before, other.prompt.size() + longer.prompt.size())
      << "each prompt looked up once";
  EXPECT_EQ(engine->kv_blocks().hit_tokens(), 64u);
  const std::vector<std::vector<int32_t>> expected = alone_outputs(tokenizer, {other, longer});
  EXPECT_EQ(tokens[first], expected[0]);
  EXPECT_EQ(tokens[second], expected[1]);
  EXPECT_EQ(engine->kv_blocks().used_blocks(), 0);
}

TEST(Scheduler, PromptLogprobsComeWithTheFirstTokenFromWholeChunkedPrefills) {
  // Small steps, so the 40-token prompt is scored over several chunks beside other requests.
  const Tokenizer tokenizer = Tokenizer::from_dir(kFixture);
  const std::unique_ptr<Engine> engine = open_engine(4);
  Scheduler scheduler(*engine, tokenizer, SchedulerOptions{12});
  const std::vector<int32_t> text = prompt(40, 5);
  SchedulerRequest scoring{text, 4, {}, {}, {}};
  scoring.sampling.logprobs = 2;
  scoring.prompt_logprobs = true;
  // The same prompt without scoring first, so its blocks are in the prefix cache.
  std::vector<SchedulerRequest> requests = {SchedulerRequest{text, 4, {}, {}, {}}};
  serve_all(scheduler, requests);
  const uint64_t hits_before = engine->kv_blocks().hit_tokens();
  std::vector<std::vector<SampledLogprobs>> prompt_logprobs;
  std::vector<std::vector<int32_t>> tokens(3);
  std::map<uint64_t, size_t> index_of;
  index_of[scheduler.submit(scoring)] = 0;
  index_of[scheduler.submit(SchedulerRequest{prompt(25, 6), 4, {}, {}, {}})] = 1;
  index_of[scheduler.submit(scoring)] = 2;
  prompt_logprobs.resize(3);
  while (scheduler.has_work()) {
    for (const RequestUpdate& update : scheduler.step()) {
      const size_t index = index_of.at(update.id);
      if (tokens[index].empty()) prompt_logprobs[index] = update.prompt_logprobs;
      else EXPECT_TRUE(update.prompt_logprobs.empty()) << "prompt log-probabilities come once";
      tokens[index].push_back(update.token);
    }
  }
  EXPECT_EQ(engine->kv_blocks().hit_tokens(), hits_before) << "a scored prompt is computed whole";
  ASSERT_EQ(prompt_logprobs[0].size(), text.size() - 1);
  EXPECT_TRUE(prompt_logprobs[1].empty());
  for (size_t i = 0; i < text.size() - 1; ++i) {
    EXPECT_EQ(prompt_logprobs[0][i].logprob, prompt_logprobs[2][i].logprob) << "position " << i;
    EXPECT_LE(prompt_logprobs[0][i].logprob, 0.0f);
    EXPECT_EQ(prompt_logprobs[0][i].top.size(), 2u);
  }
  const std::vector<std::vector<int32_t>> expected = alone_outputs(tokenizer, {scoring});
  EXPECT_EQ(tokens[0], expected[0]);
  EXPECT_EQ(tokens[2], expected[0]);
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
  SchedulerRequest unscored{prompt(3, 1), 4, {}, {}, {}};
  unscored.prompt_logprobs = true;
  EXPECT_ERROR_NAMES(scheduler.submit(unscored), "logprobs: the prompt's log-probabilities are reported with logprobs >= 0");
  EXPECT_FALSE(scheduler.has_work());
}

}  // namespace
}  // namespace shardlm
