// The JSON shapes of OpenAI's completion and chat completion responses, whole and streamed: what
// differs between the two endpoints (object names, id prefixes, `text` against `message`/`delta`)
// lives here so the connection code is written once for both.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "ops/sampler.h"
#include "serve/tool_call_parser.h"
#include "tokenizer/tokenizer.h"

namespace shardlm::serve {

enum class Endpoint { Completions, ChatCompletions };

// "cmpl-N" or "chatcmpl-N".
std::string response_id(Endpoint endpoint, uint64_t number);

// {"id", "object", "created", "model"}; `chunk` selects the streamed object name.
nlohmann::json response_head(Endpoint endpoint, bool chunk, const std::string& id, int64_t created,
                             const std::string& model);

// Characters (code points) of UTF-8 text: what OpenAI's text offsets count, as Python's len().
size_t text_characters(std::string_view text);

// A token and its log-probabilities: generated, or echoed from the prompt (whose first token has
// none: nothing comes before it).
struct TokenLogprobs {
  int32_t token = 0;
  std::optional<SampledLogprobs> logprobs;
};

// The `logprobs` of a choice for these tokens, as the endpoint shapes them: completions' parallel
// lists (tokens, token_logprobs, top_logprobs, text_offset counted from text_offset; null entries
// for a token without log-probabilities), chat's `content` list of {token, logprob, bytes,
// top_logprobs}. A token shows as its own decoded text.
nlohmann::json logprobs_json(Endpoint endpoint, std::span<const TokenLogprobs> tokens, const Tokenizer& tokenizer,
                             size_t text_offset);

// A chat reply's tool calls as OpenAI lists them: {id, type "function", function {name, arguments}},
// each with its `index` in a streamed delta; `ids` has one per call.
nlohmann::json tool_calls_json(std::span<const ToolCall> calls, std::span<const std::string> ids, bool streamed);

// What a chat reply holds besides its answer's text, once the server's parsers have read it: the
// reasoning split out of it (as `reasoning` and its older name `reasoning_content`, as vLLM sends
// both) and the tool calls (tool_calls_json, or null).
struct ChatExtras {
  std::string reasoning;
  nlohmann::json tool_calls = nullptr;
};

// A streamed choice carrying new text (and its tokens' logprobs, or null), its finish reason on the
// last one (null before); a chat delta also carries new reasoning and the tool calls.
nlohmann::json streamed_choice(Endpoint endpoint, size_t index, const std::string& text,
                               const std::optional<std::string>& finish_reason,
                               const nlohmann::json& logprobs = nullptr, const ChatExtras& extras = {});

// The first streamed chat choice, which names the assistant role before any text (as OpenAI sends
// it); nothing for completions.
std::optional<nlohmann::json> opening_choice(Endpoint endpoint, size_t index);

// A choice of a whole (not streamed) response; a chat message with tool calls or reasoning and no
// answer text has null content, as OpenAI's and vLLM's.
nlohmann::json whole_choice(Endpoint endpoint, size_t index, const std::string& text, const std::string& finish_reason,
                            const nlohmann::json& logprobs = nullptr, const ChatExtras& extras = {});

}  // namespace shardlm::serve
