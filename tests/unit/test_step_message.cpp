// The step message a tensor-parallel leader broadcasts before each forward pass: every field of a
// sampling step (rows, sampling settings with min-p, KV table changes, logit penalties) arrives
// as sent, and words that do not describe a step are refused by name instead of being read past.
#include <gtest/gtest.h>

#include <bit>
#include <optional>
#include <vector>

#include "engine/step_message.h"
#include "error_message.h"
#include "parallel/comm/thread_group.h"

namespace shardlm {
namespace {

StepMessage sampling_step() {
  StepMessage message;
  message.kind = StepKind::SAMPLE;
  message.rows = {{0, 0, 11, false, -1}, {0, 1, 12, true, -1}, {3, 7, 13, true, 42}};
  SamplingParams plain;
  SamplingParams hot;
  hot.temperature = 0.7f;
  hot.top_k = 20;
  hot.top_p = 0.9f;
  hot.seed = (uint64_t(5) << 40) | 9;
  hot.min_p = 0.05f;
  message.sampling = {plain, hot};
  message.kv_updates = {{0, 0, {4, 5}}, {3, 1, {9}}};
  LogitPenalties penalised;
  penalised.scales = {1.3f, 0.5f, -0.25f};
  penalised.tokens = {{13, 2, 1, 0.0f}, {99, 0, 0, -100.0f}};
  message.penalties = {LogitPenalties{}, penalised};
  return message;
}

TEST(StepMessage, ASamplingStepArrivesWhole) {
  const StepMessage sent = sampling_step();
  std::optional<StepMessage> received;
  ThreadGroup::run(2, [&](Communicator& comm) {
    if (comm.rank() == 0) send_step(comm, sent);
    else received = receive_step(comm);
  });
  ASSERT_TRUE(received);
  EXPECT_EQ(received->kind, StepKind::SAMPLE);
  ASSERT_EQ(received->rows.size(), sent.rows.size());
  for (size_t i = 0; i < sent.rows.size(); ++i) {
    EXPECT_EQ(received->rows[i].sequence, sent.rows[i].sequence);
    EXPECT_EQ(received->rows[i].position, sent.rows[i].position);
    EXPECT_EQ(received->rows[i].token, sent.rows[i].token);
    EXPECT_EQ(received->rows[i].wants_logits, sent.rows[i].wants_logits);
    EXPECT_EQ(received->rows[i].scored_token, sent.rows[i].scored_token);
  }
  ASSERT_EQ(received->sampling.size(), 2u);
  const SamplingParams& hot = received->sampling[1];
  EXPECT_EQ(hot.temperature, 0.7f);
  EXPECT_EQ(hot.top_k, 20);
  EXPECT_EQ(hot.top_p, 0.9f);
  EXPECT_EQ(hot.seed, sent.sampling[1].seed);
  EXPECT_EQ(hot.min_p, 0.05f);
  ASSERT_EQ(received->kv_updates.size(), 2u);
  EXPECT_EQ(received->kv_updates[0].blocks, (std::vector<int32_t>{4, 5}));
  EXPECT_EQ(received->kv_updates[1].slot, 3);
  EXPECT_EQ(received->kv_updates[1].first, 1);
  ASSERT_EQ(received->penalties.size(), 2u);
  EXPECT_TRUE(received->penalties[0].tokens.empty());
  const LogitPenalties& penalised = received->penalties[1];
  EXPECT_EQ(penalised.scales.repetition, 1.3f);
  EXPECT_EQ(penalised.scales.frequency, 0.5f);
  EXPECT_EQ(penalised.scales.presence, -0.25f);
  ASSERT_EQ(penalised.tokens.size(), 2u);
  EXPECT_EQ(penalised.tokens[0].token, 13);
  EXPECT_EQ(penalised.tokens[0].output_count, 2);
  EXPECT_EQ(penalised.tokens[0].in_prompt, 1);
  EXPECT_EQ(penalised.tokens[1].bias, -100.0f);
}

// Words broadcast by hand: a header announcing penalty words whose token count runs past them.
TEST(StepMessage, PenaltiesThatRunPastTheMessageAreRefused) {
  std::string message;
  ThreadGroup::run(2, [&](Communicator& comm) {
    if (comm.rank() == 0) {
      std::vector<int32_t> header = {int32_t(StepKind::SAMPLE), 0, 0, 0, 0, 4};
      std::vector<int32_t> body = {std::bit_cast<int32_t>(1.0f), 0, 0, 5};  // 5 tokens, none sent
      comm.broadcast(header.data(), header.size(), DType::F32, 0);
      comm.broadcast(body.data(), body.size(), DType::F32, 0);
    } else {
      message = error_message([&] { receive_step(comm); });
    }
  });
  EXPECT_NE(message.find("malformed logit penalties"), std::string::npos) << message;
}

}  // namespace
}  // namespace shardlm
