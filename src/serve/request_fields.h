// The request fields that completions and chat completions share, checked one by one against
// OpenAI's API (names as the `openai` package's types): the model, the sampling settings (penalties
// and logit_bias among them, with vLLM's min_p and repetition_penalty), stop, stream and stream_options, n,
// echo, logprobs, and best_of > 1, which this server refuses by name rather than ignores. Every
// error is an ApiError (400) naming its field.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ops/sampler.h"
#include "serve/sampling_defaults.h"

namespace shardlm::serve {

using RequestJson = nlohmann::ordered_json;  // key order kept: a template may write tools back out

struct GenerationFields {
  std::optional<int> max_tokens;  // absent: completions take 16, chat what the context leaves
  SamplingParams sampling;   // the server's SamplingDefaults where not given; a drawn seed unless given
  bool seeded = false;       // `seed` was given
  std::vector<std::string> stop;
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
  bool ignore_eos = false;     // vLLM's extension: generate max_tokens whatever the model says
  int n = 1;                   // choices per prompt
  bool echo = false;           // the prompt's text (and, with logprobs, its tokens') opens each choice (completions)
  bool skip_special_tokens = true;  // vLLM's extension: false keeps the special tokens the model writes
};

// Bounds on a request's JSON, checked while it is parsed.
inline constexpr int kMaxJsonDepth = 64;
inline constexpr size_t kMaxJsonKeys = 512;  // per object

// JSON text within those bounds, or a 400 naming `param` ("" for the body).
RequestJson parse_json(std::string_view text, const std::string& param);
// The body as a JSON object, or a 400.
RequestJson parse_body(std::string_view text);
// 400 unless `model` names the served model.
void check_model(const RequestJson& body, const std::string& served_model_name);
// How a request asks for log-probabilities: completions' `logprobs` is the count of alternatives
// (0..20); chat's is a boolean, with the count in `top_logprobs`.
enum class LogprobsField { count, flag };

// Reads the shared fields; `max_tokens_fields` lists the names a length limit may come under
// (chat accepts max_completion_tokens beside the older max_tokens). Temperature, top_p, top_k, min_p
// and repetition_penalty not given come from `defaults`.
GenerationFields parse_generation_fields(const RequestJson& body, std::initializer_list<const char*> max_tokens_fields,
                                         LogprobsField logprobs_field, const SamplingDefaults& defaults);

bool given(const RequestJson& body, const char* name);
// A JSON string that must be UTF-8 (the parser passes other bytes through).
std::string text_field(const RequestJson& value, const std::string& param);
// Every string inside `value` (keys too) must be UTF-8; the 400 names `param`.
void check_utf8_throughout(const RequestJson& value, const std::string& param);
[[noreturn]] void bad_field(const std::string& param, const std::string& message);

}  // namespace shardlm::serve
