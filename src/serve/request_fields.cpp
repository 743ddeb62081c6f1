#include "serve/request_fields.h"

#include <fmt/format.h>

#include <cmath>
#include <limits>

#include "serve/api_error.h"
#include "tokenizer/utf8.h"

namespace shardlm::serve {
namespace {

double number_field(const RequestJson& body, const char* name, double low, double high) {
  const RequestJson& value = body.at(name);
  if (!value.is_number()) bad_field(name, std::string(name) + " must be a number");
  const double number = value.get<double>();
  if (!std::isfinite(number) || number < low || number > high)
    bad_field(name, std::string(name) + " must be between " + RequestJson(low).dump() + " and " + RequestJson(high).dump() +
                        ", got " + value.dump());
  return number;
}

int64_t integer_field(const RequestJson& body, const char* name, int64_t low, int64_t high) {
  const RequestJson& value = body.at(name);
  if (!value.is_number_integer()) bad_field(name, std::string(name) + " must be an integer, got " + value.dump());
  const int64_t number = value.is_number_unsigned() && value.get<uint64_t>() > uint64_t(INT64_MAX)
                             ? INT64_MAX
                             : value.get<int64_t>();
  if (number < low || number > high)
    bad_field(name, std::string(name) + " must be between " + std::to_string(low) + " and " + std::to_string(high) +
                        ", got " + value.dump());
  return number;
}

// OpenAI's logit_bias: {"token id": bias in [-100, 100], ...}. The JSON parser already bounds how
// many keys an object has (kMaxJsonKeys); token ids past the vocabulary are the scheduler's to refuse.
std::vector<TokenBias> logit_bias_field(const RequestJson& value) {
  if (!value.is_object()) bad_field("logit_bias", "logit_bias must be an object mapping token ids to biases");
  std::vector<TokenBias> biases;
  for (const auto& [key, bias] : value.items()) {
    const bool digits = !key.empty() && key.size() <= 10 && key.find_first_not_of("0123456789") == std::string::npos;
    const int64_t token = digits ? std::stoll(key) : -1;
    if (token < 0 || token > INT32_MAX)
      bad_field("logit_bias", "logit_bias keys must be token ids (non-negative integers as strings), got \"" + key + "\"");
    if (!bias.is_number() || !std::isfinite(bias.get<double>()) || std::fabs(bias.get<double>()) > 100.0)
      bad_field("logit_bias", "logit_bias: the bias of token " + key + " must be a number between -100 and 100, got " + bias.dump());
    biases.push_back({int32_t(token), float(bias.get<double>())});
  }
  return biases;
}

}  // namespace

void bad_field(const std::string& param, const std::string& message) { throw ApiError(400, message, param); }

bool given(const RequestJson& body, const char* name) { return body.contains(name) && !body.at(name).is_null(); }

std::string text_field(const RequestJson& value, const std::string& param) {
  if (!value.is_string()) bad_field(param, param + " must be a string");
  std::string text = value.get<std::string>();
  const size_t invalid = utf8::first_invalid_offset(text);
  if (invalid != utf8::kInvalidOffset)
    bad_field(param, param + " is not valid UTF-8 (byte " + std::to_string(invalid) + ")");
  return text;
}

void check_utf8_throughout(const RequestJson& value, const std::string& param) {
  if (value.is_string()) {
    text_field(value, param);
  } else if (value.is_array()) {
    for (const RequestJson& item : value) check_utf8_throughout(item, param);
  } else if (value.is_object()) {
    for (const auto& [key, item] : value.items()) {
      text_field(RequestJson(key), param);
      check_utf8_throughout(item, param);
    }
  }
}

RequestJson parse_json(std::string_view text, const std::string& param) {
  // Checked while parsing, before anything walks the tree: code that recurses over it (UTF-8
  // checks, copies, the template's values) must not run out of stack, and an ordered object's
  // linear key lookup must not turn a body of many keys into seconds on the connections' thread.
  std::vector<size_t> keys_of_open_objects;
  auto bounded = [&](int depth, RequestJson::parse_event_t event, RequestJson&) {
    if (depth > kMaxJsonDepth)
      bad_field(param, fmt::format("{} nests deeper than {} levels", param.empty() ? "the body" : param, kMaxJsonDepth));
    if (event == RequestJson::parse_event_t::object_start) {
      keys_of_open_objects.push_back(0);
    } else if (event == RequestJson::parse_event_t::object_end) {
      keys_of_open_objects.pop_back();
    } else if (event == RequestJson::parse_event_t::key && ++keys_of_open_objects.back() > kMaxJsonKeys) {
      bad_field(param, fmt::format("an object in {} has more than {} keys", param.empty() ? "the body" : param, kMaxJsonKeys));
    }
    return true;
  };
  try {
    return RequestJson::parse(text, bounded);
  } catch (const RequestJson::exception& error) {  // a syntax error, or a number too large to hold
    bad_field(param, fmt::format("{} is not valid JSON: {}", param.empty() ? "the body" : param, error.what()));
  }
}

RequestJson parse_body(std::string_view text) {
  RequestJson body = parse_json(text, "");
  if (!body.is_object()) bad_field("", "the body must be a JSON object");
  return body;
}

void check_model(const RequestJson& body, const std::string& served_model_name) {
  if (!given(body, "model") || !body.at("model").is_string()) bad_field("model", "model must be a string");
  if (body.at("model").get<std::string>() != served_model_name)
    bad_field("model", "model \"" + text_field(body.at("model"), "model") + "\" does not exist: this server serves \"" +
                           served_model_name + "\"");
}

GenerationFields parse_generation_fields(const RequestJson& body, std::initializer_list<const char*> max_tokens_fields,
                                         LogprobsField logprobs_field, const SamplingDefaults& defaults) {
  GenerationFields fields;
  fields.sampling.temperature = defaults.temperature;
  fields.sampling.top_p = defaults.top_p;
  fields.sampling.top_k = defaults.top_k;
  fields.sampling.min_p = defaults.min_p;
  fields.sampling.repetition_penalty = defaults.repetition_penalty;
  for (const char* name : max_tokens_fields)
    if (given(body, name)) fields.max_tokens = int(integer_field(body, name, 1, INT32_MAX));
  if (given(body, "temperature")) fields.sampling.temperature = float(number_field(body, "temperature", 0.0, 2.0));
  if (given(body, "top_p")) {
    fields.sampling.top_p = float(number_field(body, "top_p", 0.0, 1.0));
    if (fields.sampling.top_p <= 0.0f) bad_field("top_p", "top_p must be greater than 0");
  }
  // -1 turns top-k off, as in vLLM.
  if (given(body, "top_k")) fields.sampling.top_k = std::max(0, int(integer_field(body, "top_k", -1, INT32_MAX)));
  if (given(body, "seed")) {
    fields.sampling.seed = uint64_t(integer_field(body, "seed", std::numeric_limits<int64_t>::min(), INT64_MAX));
    fields.seeded = true;
  }
  if (given(body, "stop")) {
    const RequestJson& stop = body.at("stop");
    if (stop.is_string()) {
      fields.stop.push_back(text_field(stop, "stop"));
    } else if (stop.is_array()) {
      for (const RequestJson& each : stop) {
        if (!each.is_string()) bad_field("stop", "stop must be a string or a list of strings");
        fields.stop.push_back(text_field(each, "stop"));
      }
    } else {
      bad_field("stop", "stop must be a string or a list of strings");
    }
    for (const std::string& each : fields.stop)
      if (each.empty()) bad_field("stop", "stop strings must not be empty");
  }
  if (given(body, "stream")) {
    if (!body.at("stream").is_boolean()) bad_field("stream", "stream must be a boolean");
    fields.stream = body.at("stream").get<bool>();
  }
  if (given(body, "stream_options")) {
    const RequestJson& options = body.at("stream_options");
    if (!options.is_object()) bad_field("stream_options", "stream_options must be an object");
    if (!fields.stream) bad_field("stream_options", "stream_options is only allowed with stream: true");
    if (given(options, "include_usage")) {
      if (!options.at("include_usage").is_boolean())
        bad_field("stream_options.include_usage", "stream_options.include_usage must be a boolean");
      fields.include_usage = options.at("include_usage").get<bool>();
    }
  }
  if (given(body, "skip_special_tokens")) {
    if (!body.at("skip_special_tokens").is_boolean())
      bad_field("skip_special_tokens", "skip_special_tokens must be a boolean");
    fields.skip_special_tokens = body.at("skip_special_tokens").get<bool>();
  }
  if (given(body, "ignore_eos")) {
    if (!body.at("ignore_eos").is_boolean()) bad_field("ignore_eos", "ignore_eos must be a boolean");
    fields.ignore_eos = body.at("ignore_eos").get<bool>();
  }
  if (given(body, "n")) fields.n = int(integer_field(body, "n", 1, 128));
  if (given(body, "best_of") && integer_field(body, "best_of", 1, 128) != 1)
    bad_field("best_of", "best_of > 1 is not supported yet");
  if (given(body, "echo")) {
    if (!body.at("echo").is_boolean()) bad_field("echo", "echo must be a boolean");
    fields.echo = body.at("echo").get<bool>();
  }
  if (logprobs_field == LogprobsField::count) {
    if (given(body, "logprobs")) fields.sampling.logprobs = int(integer_field(body, "logprobs", 0, kMaxTopLogprobs));
    if (given(body, "top_logprobs"))
      bad_field("top_logprobs", "top_logprobs is a chat field: completions take the count as logprobs");
  } else {
    if (given(body, "logprobs")) {
      if (!body.at("logprobs").is_boolean()) bad_field("logprobs", "logprobs must be a boolean");
      if (body.at("logprobs").get<bool>()) fields.sampling.logprobs = 0;
    }
    if (given(body, "top_logprobs")) {
      const int top = int(integer_field(body, "top_logprobs", 0, kMaxTopLogprobs));
      if (fields.sampling.logprobs < 0 && top > 0) bad_field("top_logprobs", "top_logprobs needs logprobs: true");
      if (fields.sampling.logprobs >= 0) fields.sampling.logprobs = top;
    }
  }
  if (given(body, "min_p")) fields.sampling.min_p = float(number_field(body, "min_p", 0.0, 1.0));  // vLLM's extension
  if (given(body, "presence_penalty")) fields.sampling.presence_penalty = float(number_field(body, "presence_penalty", -2.0, 2.0));
  if (given(body, "frequency_penalty"))
    fields.sampling.frequency_penalty = float(number_field(body, "frequency_penalty", -2.0, 2.0));
  if (given(body, "repetition_penalty")) {
    // vLLM's extension (Transformers' meaning); vLLM asks only that it be positive.
    fields.sampling.repetition_penalty = float(number_field(body, "repetition_penalty", 0.0, 1e6));
    if (!(fields.sampling.repetition_penalty > 0.0f)) bad_field("repetition_penalty", "repetition_penalty must be > 0");
  }
  if (given(body, "logit_bias")) fields.sampling.logit_bias = logit_bias_field(body.at("logit_bias"));
  return fields;
}

}  // namespace shardlm::serve
