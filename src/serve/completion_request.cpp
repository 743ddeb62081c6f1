#include "serve/completion_request.h"

#include <nlohmann/json.hpp>

#include <cmath>
#include <limits>

#include "serve/api_error.h"
#include "serve/token_ids.h"
#include "tokenizer/utf8.h"

namespace shardlm::serve {
namespace {

using nlohmann::json;

[[noreturn]] void bad(const std::string& param, const std::string& message) { throw ApiError(400, message, param); }

double number_field(const json& body, const char* name, double low, double high) {
  const json& value = body.at(name);
  if (!value.is_number()) bad(name, std::string(name) + " must be a number");
  const double number = value.get<double>();
  if (!std::isfinite(number) || number < low || number > high)
    bad(name, std::string(name) + " must be between " + json(low).dump() + " and " + json(high).dump() + ", got " +
                  value.dump());
  return number;
}

int64_t integer_field(const json& body, const char* name, int64_t low, int64_t high) {
  const json& value = body.at(name);
  if (!value.is_number_integer()) bad(name, std::string(name) + " must be an integer, got " + value.dump());
  const int64_t number = value.is_number_unsigned() && value.get<uint64_t>() > uint64_t(INT64_MAX)
                             ? INT64_MAX
                             : value.get<int64_t>();
  if (number < low || number > high)
    bad(name, std::string(name) + " must be between " + std::to_string(low) + " and " + std::to_string(high) +
                  ", got " + value.dump());
  return number;
}

bool given(const json& body, const char* name) { return body.contains(name) && !body.at(name).is_null(); }

// JSON strings must be UTF-8; the parser passes other bytes through, so they are refused here.
std::string text_field(const json& value, const char* param) {
  std::string text = value.get<std::string>();
  const size_t invalid = utf8::first_invalid_offset(text);
  if (invalid != utf8::kInvalidOffset)
    bad(param, std::string(param) + " is not valid UTF-8 (byte " + std::to_string(invalid) + ")");
  return text;
}

std::vector<Prompt> prompts_of(const json& prompt) {
  if (prompt.is_string()) return {text_field(prompt, "prompt")};
  if (!prompt.is_array() || prompt.empty())
    bad("prompt", "prompt must be a string, a list of strings, a list of token ids or a list of such lists");
  if (prompt.front().is_number()) return {parse_token_ids(prompt, "prompt")};
  std::vector<Prompt> prompts;
  for (const json& each : prompt) {
    if (each.is_string()) prompts.emplace_back(text_field(each, "prompt"));
    else if (each.is_array() && !each.empty()) prompts.emplace_back(parse_token_ids(each, "prompt"));
    else bad("prompt", "prompt: each entry of a list must be a string or a non-empty list of token ids");
  }
  return prompts;
}

}  // namespace

CompletionRequest parse_completion_request(std::string_view text, const std::string& served_model_name) {
  json body;
  try {
    body = json::parse(text);
  } catch (const json::exception& error) {  // a syntax error, or a number too large to hold
    bad("", std::string("the body is not valid JSON: ") + error.what());
  }
  if (!body.is_object()) bad("", "the body must be a JSON object");
  if (!given(body, "model") || !body.at("model").is_string()) bad("model", "model must be a string");
  if (body.at("model").get<std::string>() != served_model_name)
    bad("model", "model \"" + text_field(body.at("model"), "model") + "\" does not exist: this server serves \"" +
                     served_model_name + "\"");
  if (!given(body, "prompt")) bad("prompt", "prompt is required");

  CompletionRequest request;
  request.prompts = prompts_of(body.at("prompt"));
  request.sampling.temperature = 1.0f;
  if (given(body, "max_tokens")) request.max_tokens = int(integer_field(body, "max_tokens", 1, INT32_MAX));
  if (given(body, "temperature")) request.sampling.temperature = float(number_field(body, "temperature", 0.0, 2.0));
  if (given(body, "top_p")) {
    request.sampling.top_p = float(number_field(body, "top_p", 0.0, 1.0));
    if (request.sampling.top_p <= 0.0f) bad("top_p", "top_p must be greater than 0");
  }
  // -1 turns top-k off, as in vLLM.
  if (given(body, "top_k")) request.sampling.top_k = std::max(0, int(integer_field(body, "top_k", -1, INT32_MAX)));
  if (given(body, "seed")) {
    request.sampling.seed = uint64_t(integer_field(body, "seed", std::numeric_limits<int64_t>::min(), INT64_MAX));
    request.seeded = true;
  }
  if (given(body, "stop")) {
    const json& stop = body.at("stop");
    if (stop.is_string()) {
      request.stop.push_back(text_field(stop, "stop"));
    } else if (stop.is_array()) {
      for (const json& each : stop) {
        if (!each.is_string()) bad("stop", "stop must be a string or a list of strings");
        request.stop.push_back(text_field(each, "stop"));
      }
    } else {
      bad("stop", "stop must be a string or a list of strings");
    }
    for (const std::string& each : request.stop)
      if (each.empty()) bad("stop", "stop strings must not be empty");
  }
  if (given(body, "stream")) {
    if (!body.at("stream").is_boolean()) bad("stream", "stream must be a boolean");
    request.stream = body.at("stream").get<bool>();
  }
  if (given(body, "stream_options")) {
    const json& options = body.at("stream_options");
    if (!options.is_object()) bad("stream_options", "stream_options must be an object");
    if (!request.stream) bad("stream_options", "stream_options is only allowed with stream: true");
    if (given(options, "include_usage")) {
      if (!options.at("include_usage").is_boolean())
        bad("stream_options.include_usage", "stream_options.include_usage must be a boolean");
      request.include_usage = options.at("include_usage").get<bool>();
    }
  }
  if (given(body, "n") && integer_field(body, "n", 1, 128) != 1) bad("n", "n > 1 is not supported yet");
  if (given(body, "best_of") && integer_field(body, "best_of", 1, 128) != 1)
    bad("best_of", "best_of > 1 is not supported yet");
  if (given(body, "echo") && (!body.at("echo").is_boolean() || body.at("echo").get<bool>()))
    bad("echo", "echo is not supported yet");
  if (given(body, "logprobs")) bad("logprobs", "logprobs are not supported yet");
  for (const char* penalty : {"presence_penalty", "frequency_penalty"})
    if (given(body, penalty) && number_field(body, penalty, -2.0, 2.0) != 0.0)
      bad(penalty, std::string(penalty) + " is not supported yet");
  if (given(body, "logit_bias") && !body.at("logit_bias").empty()) bad("logit_bias", "logit_bias is not supported yet");
  return request;
}

}  // namespace shardlm::serve
