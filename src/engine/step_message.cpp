// Messages are packed into 32-bit words: a header (kind, rows, sampling entries, slot, table words,
// penalty words), then five words per row, six per sampling entry, each table update as (slot,
// first entry, block count, blocks...), and each row's penalties as (repetition, frequency,
// presence, token count, then four words per token). The header goes first so that receivers can
// size the rest. Broadcast copies elements without arithmetic, so the words travel as 4-byte F32
// elements. A sampling entry leaves out logprobs (only the leader reports them, so only it computes
// them) and its penalties, which travel as the rows' LogitPenalties.
#include "engine/step_message.h"

#include <bit>

#include "core/error.h"

namespace shardlm {
namespace {

constexpr size_t kHeaderWords = 6;
constexpr size_t kRowWords = 5;
constexpr size_t kSamplingWords = 6;
constexpr size_t kPenaltyHeadWords = 4;
constexpr size_t kPenalisedTokenWords = 4;

int32_t float_bits(float value) { return std::bit_cast<int32_t>(value); }
float bits_float(int32_t bits) { return std::bit_cast<float>(bits); }

void broadcast_words(Communicator& comm, std::vector<int32_t>& words) {
  static_assert(sizeof(float) == sizeof(int32_t));
  comm.broadcast(words.data(), words.size(), DType::F32, 0);
}

}  // namespace

void send_step(Communicator& comm, const StepMessage& message) {
  std::vector<int32_t> tables;
  for (const KvBlockUpdate& update : message.kv_updates) {
    tables.insert(tables.end(), {update.slot, update.first, int32_t(update.blocks.size())});
    tables.insert(tables.end(), update.blocks.begin(), update.blocks.end());
  }
  std::vector<int32_t> penalties;
  for (const LogitPenalties& row : message.penalties) {
    penalties.insert(penalties.end(), {float_bits(row.scales.repetition), float_bits(row.scales.frequency),
                                       float_bits(row.scales.presence), int32_t(row.tokens.size())});
    for (const PenalisedToken& token : row.tokens)
      penalties.insert(penalties.end(), {token.token, token.output_count, token.in_prompt, float_bits(token.bias)});
  }
  std::vector<int32_t> header = {int32_t(message.kind), int32_t(message.rows.size()), int32_t(message.sampling.size()),
                                 message.slot, int32_t(tables.size()), int32_t(penalties.size())};
  broadcast_words(comm, header);
  if (message.rows.empty() && message.sampling.empty() && tables.empty() && penalties.empty()) return;
  std::vector<int32_t> body;
  body.reserve(message.rows.size() * kRowWords + message.sampling.size() * kSamplingWords + tables.size() + penalties.size());
  for (const TokenRow& row : message.rows)
    body.insert(body.end(), {row.sequence, int32_t(row.position), row.token, int32_t(row.wants_logits), row.scored_token});
  for (const SamplingParams& params : message.sampling)
    body.insert(body.end(), {float_bits(params.temperature), params.top_k, float_bits(params.top_p),
                             int32_t(uint32_t(params.seed)), int32_t(uint32_t(params.seed >> 32)), float_bits(params.min_p)});
  body.insert(body.end(), tables.begin(), tables.end());
  body.insert(body.end(), penalties.begin(), penalties.end());
  broadcast_words(comm, body);
}

StepMessage receive_step(Communicator& comm) {
  std::vector<int32_t> header(kHeaderWords);
  broadcast_words(comm, header);
  if (header[0] < int32_t(StepKind::SAMPLE) || header[0] > int32_t(StepKind::KEEP_ALIVE) || header[1] < 0 || header[2] < 0 ||
      header[4] < 0 || header[5] < 0)
    fail("tensor parallel: rank {} received a malformed step header", comm.rank());
  StepMessage message;
  message.kind = StepKind(header[0]);
  message.slot = header[3];
  const size_t n_rows = size_t(header[1]), n_sampling = size_t(header[2]), n_table_words = size_t(header[4]),
               n_penalty_words = size_t(header[5]);
  if (n_rows == 0 && n_sampling == 0 && n_table_words == 0 && n_penalty_words == 0) return message;
  std::vector<int32_t> body(n_rows * kRowWords + n_sampling * kSamplingWords + n_table_words + n_penalty_words);
  broadcast_words(comm, body);
  const int32_t* word = body.data();
  for (size_t i = 0; i < n_rows; ++i, word += kRowWords)
    message.rows.push_back({word[0], int64_t(word[1]), word[2], word[3] != 0, word[4]});
  for (size_t i = 0; i < n_sampling; ++i, word += kSamplingWords) {
    SamplingParams& params = message.sampling.emplace_back();
    params.temperature = bits_float(word[0]);
    params.top_k = word[1];
    params.top_p = bits_float(word[2]);
    params.seed = uint64_t(uint32_t(word[3])) | (uint64_t(uint32_t(word[4])) << 32);
    params.min_p = bits_float(word[5]);
  }
  const int32_t* tables_end = word + n_table_words;
  while (word < tables_end) {
    if (tables_end - word < 3 || word[2] < 0 || word[2] > tables_end - word - 3)
      fail("tensor parallel: rank {} received a malformed KV block table update", comm.rank());
    message.kv_updates.push_back({word[0], word[1], std::vector<int32_t>(word + 3, word + 3 + word[2])});
    word += 3 + word[2];
  }
  const int32_t* end = body.data() + body.size();
  while (word < end) {
    const ptrdiff_t n_tokens = end - word < ptrdiff_t(kPenaltyHeadWords) ? -1 : word[3];
    if (n_tokens < 0 || n_tokens > (end - word - ptrdiff_t(kPenaltyHeadWords)) / ptrdiff_t(kPenalisedTokenWords))
      fail("tensor parallel: rank {} received malformed logit penalties", comm.rank());
    LogitPenalties& row = message.penalties.emplace_back();
    row.scales = {bits_float(word[0]), bits_float(word[1]), bits_float(word[2])};
    word += kPenaltyHeadWords;
    for (ptrdiff_t i = 0; i < n_tokens; ++i, word += kPenalisedTokenWords)
      row.tokens.push_back({word[0], word[1], word[2], bits_float(word[3])});
  }
  return message;
}

}  // namespace shardlm
