// GET /metrics' text, read back the way Prometheus reads it: every line is a # HELP, a # TYPE or a
// sample of a family announced before it; histogram buckets are cumulative ("less than or equal"),
// end with le="+Inf" equal to _count, and _sum adds the observations. Counters and histograms
// follow what was recorded, and the engine thread records what a real engine produced.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "core/error.h"
#include "engine/engine.h"
#include "runtime/scheduler.h"
#include "serve/engine_loop.h"
#include "serve/histogram.h"
#include "serve/metrics.h"
#include "serve/prometheus_text.h"
#include "tokenizer/tokenizer.h"

namespace shardlm::serve {
namespace {

namespace fs = std::filesystem;

// The samples of an exposition, keyed by the series as written (`name` or `name{labels}`), after
// checking every line's form and that each sample's family was announced by # HELP then # TYPE.
struct Exposition {
  std::map<std::string, double> samples;
  std::map<std::string, std::string> types;  // family name -> counter, gauge or histogram
  std::vector<std::string> families;         // in order

  double at(const std::string& series) const {
    const auto found = samples.find(series);
    if (found == samples.end()) ADD_FAILURE() << "no series " << series;
    return found == samples.end() ? std::numeric_limits<double>::quiet_NaN() : found->second;
  }
};

double parse_value(const std::string& text) {
  if (text == "+Inf") return std::numeric_limits<double>::infinity();
  size_t used = 0;
  const double value = std::stod(text, &used);
  EXPECT_EQ(used, text.size()) << "value " << text;
  return value;
}

// The family a sample belongs to: its own name, or a histogram's name without the suffix.
std::string family_of(const std::string& name, const std::map<std::string, std::string>& types) {
  if (types.count(name)) return name;
  for (const std::string suffix : {"_bucket", "_sum", "_count"})
    if (name.size() > suffix.size() && name.ends_with(suffix)) {
      const std::string family = name.substr(0, name.size() - suffix.size());
      const auto found = types.find(family);
      if (found != types.end() && found->second == "histogram") return family;
    }
  return "";
}

Exposition parse_exposition(const std::string& text) {
  static const std::regex help(R"(# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) \S.*)");
  static const std::regex type(R"(# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram))");
  static const std::regex sample(R"(([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*\})? (\S+))");
  Exposition exposition;
  EXPECT_TRUE(text.ends_with("\n")) << "the last line ends with a newline";
  std::istringstream lines(text);
  std::string line, helped, current;
  std::smatch match;
  while (std::getline(lines, line)) {
    if (std::regex_match(line, match, help)) {
      EXPECT_EQ(exposition.types.count(match[1].str()), 0u) << "family announced twice: " << line;
      helped = match[1].str();
    } else if (std::regex_match(line, match, type)) {
      EXPECT_EQ(match[1].str(), helped) << "# TYPE without its # HELP just before: " << line;
      exposition.types[match[1].str()] = match[2].str();
      exposition.families.push_back(match[1].str());
      current = match[1].str();
    } else if (std::regex_match(line, match, sample)) {
      EXPECT_EQ(family_of(match[1].str(), exposition.types), current) << "a sample outside its family: " << line;
      const std::string series = match[1].str() + match[2].str();
      EXPECT_EQ(exposition.samples.count(series), 0u) << "series written twice: " << line;
      exposition.samples[series] = parse_value(match[4].str());
    } else {
      ADD_FAILURE() << "not a line of the text format: [" << line << "]";
    }
  }
  return exposition;
}

// A histogram's `le` bounds in order, checking its buckets are cumulative and +Inf equals _count.
std::vector<std::string> check_histogram(const Exposition& exposition, const std::string& name) {
  static const std::regex bucket("_bucket\\{le=\"([^\"]+)\"\\}");
  std::vector<std::pair<double, std::string>> bounds;
  std::smatch match;
  for (const auto& [series, value] : exposition.samples)
    if (series.starts_with(name + "_bucket") && std::regex_search(series, match, bucket))
      bounds.push_back({parse_value(match[1].str()), match[1].str()});
  std::sort(bounds.begin(), bounds.end());
  EXPECT_FALSE(bounds.empty()) << name;
  if (bounds.empty()) return {};
  EXPECT_EQ(bounds.back().second, "+Inf") << name;
  std::vector<std::string> labels;
  double previous = 0;
  for (const auto& [bound, label] : bounds) {
    const double count = exposition.at(name + "_bucket{le=\"" + label + "\"}");
    EXPECT_GE(count, previous) << name << " le=" << label << ": buckets are cumulative";
    previous = count;
    labels.push_back(label);
  }
  EXPECT_EQ(previous, exposition.at(name + "_count")) << name;
  return labels;
}

std::string bucket(const std::string& name, const std::string& le) { return name + "_bucket{le=\"" + le + "\"}"; }

TEST(PrometheusText, NumbersReadAsPrometheusClientWritesThem) {
  EXPECT_EQ(prometheus_number(1.0), "1.0");
  EXPECT_EQ(prometheus_number(2560.0), "2560.0");
  EXPECT_EQ(prometheus_number(0.001), "0.001");
  EXPECT_EQ(prometheus_number(2.5), "2.5");
  EXPECT_EQ(prometheus_number(1e-7), "1e-07");
  EXPECT_EQ(prometheus_number(std::numeric_limits<double>::infinity()), "+Inf");
  EXPECT_EQ(prometheus_number(std::numeric_limits<double>::quiet_NaN()), "NaN");
}

TEST(Histogram, BucketsAreCumulativeAndABoundCountsInItsOwnBucket) {
  Histogram histogram({0.1, 0.5, 1.0});
  for (double value : {0.05, 0.1, 0.3, 1.0, 7.0}) histogram.observe(value);
  std::string text;
  histogram.render("test_seconds", "Seconds of a test.", text);
  const Exposition exposition = parse_exposition(text);
  EXPECT_EQ(exposition.types.at("test_seconds"), "histogram");
  EXPECT_EQ(check_histogram(exposition, "test_seconds"), (std::vector<std::string>{"0.1", "0.5", "1.0", "+Inf"}));
  EXPECT_EQ(exposition.at(bucket("test_seconds", "0.1")), 2);  // 0.05, and 0.1 on the bound
  EXPECT_EQ(exposition.at(bucket("test_seconds", "0.5")), 3);
  EXPECT_EQ(exposition.at(bucket("test_seconds", "1.0")), 4);
  EXPECT_EQ(exposition.at(bucket("test_seconds", "+Inf")), 5);
  EXPECT_EQ(exposition.at("test_seconds_count"), 5);
  EXPECT_DOUBLE_EQ(exposition.at("test_seconds_sum"), 0.05 + 0.1 + 0.3 + 1.0 + 7.0);
}

TEST(Histogram, AnEmptyOneRendersZeros) {
  std::string text;
  Histogram({1.0}).render("empty_seconds", "Nothing yet.", text);
  EXPECT_EQ(text,
            "# HELP empty_seconds Nothing yet.\n# TYPE empty_seconds histogram\n"
            "empty_seconds_bucket{le=\"1.0\"} 0\nempty_seconds_bucket{le=\"+Inf\"} 0\n"
            "empty_seconds_sum 0.0\nempty_seconds_count 0\n");
}

TEST(Histogram, BoundsMustAscend) {
  EXPECT_THROW(Histogram({0.5, 0.1}), Error);
  EXPECT_THROW(Histogram({0.5, 0.5}), Error);
  EXPECT_THROW(Histogram({std::numeric_limits<double>::infinity()}), Error);
}

const std::vector<std::string> kFamilies = {
    "shardlm:num_requests_running",        "shardlm:num_requests_waiting",
    "shardlm:kv_cache_usage_perc",         "shardlm:kv_cache_blocks_used",
    "shardlm:prefix_cache_queries_total",  "shardlm:prefix_cache_hits_total",
    "shardlm:num_preemptions_total",       "shardlm:prompt_tokens_total",
    "shardlm:generation_tokens_total",     "shardlm:request_success_total",
    "shardlm:time_to_first_token_seconds", "shardlm:inter_token_latency_seconds",
    "shardlm:e2e_request_latency_seconds", "shardlm:iteration_tokens_total",
    "shardlm:engine_step_seconds",         "shardlm:step_host_seconds_total"};

TEST(ServerMetrics, BeforeAnyRequestEverySeriesIsThereAtZero) {
  const Exposition exposition = parse_exposition(ServerMetrics().render());
  EXPECT_EQ(exposition.families, kFamilies);
  EXPECT_EQ(exposition.types.at("shardlm:num_requests_running"), "gauge");
  EXPECT_EQ(exposition.types.at("shardlm:kv_cache_usage_perc"), "gauge");
  EXPECT_EQ(exposition.types.at("shardlm:prompt_tokens_total"), "counter");
  EXPECT_EQ(exposition.types.at("shardlm:request_success_total"), "counter");
  EXPECT_EQ(exposition.types.at("shardlm:time_to_first_token_seconds"), "histogram");
  for (const auto& [series, value] : exposition.samples) EXPECT_EQ(value, 0) << series;
  for (const char* reason : {"stop", "length", "cancelled", "error"})
    EXPECT_EQ(
        exposition.samples.count(std::string("shardlm:request_success_total{finished_reason=\"") + reason + "\"}"), 1u)
        << reason;
  // vLLM's TTFT buckets, then +Inf.
  EXPECT_EQ(check_histogram(exposition, "shardlm:time_to_first_token_seconds"),
            (std::vector<std::string>{"0.001", "0.005", "0.01", "0.02",  "0.04",  "0.06",   "0.08", "0.1",
                                      "0.25",  "0.5",   "0.75", "1.0",   "2.5",   "5.0",    "7.5",  "10.0",
                                      "20.0",  "40.0",  "80.0", "160.0", "640.0", "2560.0", "+Inf"}));
  EXPECT_EQ(std::string(kPrometheusContentType), "text/plain; version=0.0.4; charset=utf-8");
}

TEST(ServerMetrics, CountersAndHistogramsFollowWhatWasRecorded) {
  ServerMetrics metrics;
  metrics.record_load({3, 2, 0.25, 12, 640, 256, 4});
  // Request A: 7 prompt tokens, 3 tokens, stopped. B: 5 prompt tokens, 2 tokens, length.
  // C: 4 prompt tokens, 1 token, then its client left. D: failed before its first token.
  metrics.record_first_token(7, 0.03);
  metrics.record_next_token(0.002);
  metrics.record_next_token(0.02);
  metrics.record_end(RequestEnd::stop, 0.2);
  metrics.record_first_token(5, 0.3);
  metrics.record_next_token(0.004);
  metrics.record_end(RequestEnd::length, 1.2);
  metrics.record_first_token(4, 3.0);
  metrics.record_end(RequestEnd::cancelled, 9.0);
  metrics.record_end(RequestEnd::error, 0.5);
  // Two steps: a prompt chunk beside two decode rows, then three decode rows.
  metrics.record_step({514, 0.03, 0.001});
  metrics.record_step({3, 0.004, 0.0005});
  const Exposition e = parse_exposition(metrics.render());
  EXPECT_EQ(e.families, kFamilies);
  EXPECT_EQ(e.at("shardlm:num_requests_running"), 3);
  EXPECT_EQ(e.at("shardlm:num_requests_waiting"), 2);
  EXPECT_EQ(e.at("shardlm:kv_cache_usage_perc"), 0.25);
  EXPECT_EQ(e.at("shardlm:kv_cache_blocks_used"), 12);
  EXPECT_EQ(e.at("shardlm:prefix_cache_queries_total"), 640);
  EXPECT_EQ(e.at("shardlm:prefix_cache_hits_total"), 256);
  EXPECT_EQ(e.at("shardlm:num_preemptions_total"), 4);
  EXPECT_EQ(e.at("shardlm:prompt_tokens_total"), 7 + 5 + 4);
  EXPECT_EQ(e.at("shardlm:generation_tokens_total"), 3 + 2 + 1);
  EXPECT_EQ(e.at("shardlm:request_success_total{finished_reason=\"stop\"}"), 1);
  EXPECT_EQ(e.at("shardlm:request_success_total{finished_reason=\"length\"}"), 1);
  EXPECT_EQ(e.at("shardlm:request_success_total{finished_reason=\"cancelled\"}"), 1);
  EXPECT_EQ(e.at("shardlm:request_success_total{finished_reason=\"error\"}"), 1);

  const std::string ttft = "shardlm:time_to_first_token_seconds";
  check_histogram(e, ttft);
  EXPECT_EQ(e.at(ttft + "_count"), 3);
  EXPECT_DOUBLE_EQ(e.at(ttft + "_sum"), 0.03 + 0.3 + 3.0);
  EXPECT_EQ(e.at(bucket(ttft, "0.02")), 0);
  EXPECT_EQ(e.at(bucket(ttft, "0.04")), 1);
  EXPECT_EQ(e.at(bucket(ttft, "0.25")), 1);
  EXPECT_EQ(e.at(bucket(ttft, "0.5")), 2);
  EXPECT_EQ(e.at(bucket(ttft, "2.5")), 2);
  EXPECT_EQ(e.at(bucket(ttft, "5.0")), 3);

  const std::string itl = "shardlm:inter_token_latency_seconds";
  check_histogram(e, itl);
  EXPECT_EQ(e.at(itl + "_count"), 3);  // the tokens after each request's first
  EXPECT_EQ(e.at(bucket(itl, "0.001")), 0);
  EXPECT_EQ(e.at(bucket(itl, "0.0025")), 1);
  EXPECT_EQ(e.at(bucket(itl, "0.005")), 2);
  EXPECT_EQ(e.at(bucket(itl, "0.025")), 3);

  // Only the requests the engine completed.
  const std::string e2e = "shardlm:e2e_request_latency_seconds";
  check_histogram(e, e2e);
  EXPECT_EQ(e.at(e2e + "_count"), 2);
  EXPECT_DOUBLE_EQ(e.at(e2e + "_sum"), 0.2 + 1.2);
  EXPECT_EQ(e.at(bucket(e2e, "0.3")), 1);
  EXPECT_EQ(e.at(bucket(e2e, "1.5")), 2);

  const std::string iteration = "shardlm:iteration_tokens_total";
  EXPECT_EQ(check_histogram(e, iteration),
            (std::vector<std::string>{"1.0", "8.0", "16.0", "32.0", "64.0", "128.0", "256.0", "512.0", "1024.0",
                                      "2048.0", "4096.0", "8192.0", "16384.0", "+Inf"}));
  EXPECT_EQ(e.at(iteration + "_sum"), 514 + 3);
  EXPECT_EQ(e.at(bucket(iteration, "1.0")), 0);
  EXPECT_EQ(e.at(bucket(iteration, "8.0")), 1);
  EXPECT_EQ(e.at(bucket(iteration, "512.0")), 1);
  EXPECT_EQ(e.at(bucket(iteration, "1024.0")), 2);
  const std::string engine_step = "shardlm:engine_step_seconds";
  check_histogram(e, engine_step);
  EXPECT_EQ(e.at(engine_step + "_count"), 2);
  EXPECT_DOUBLE_EQ(e.at(engine_step + "_sum"), 0.034);
  EXPECT_EQ(e.at(bucket(engine_step, "0.005")), 1);
  EXPECT_DOUBLE_EQ(e.at("shardlm:step_host_seconds_total"), 0.0015);
}

// The engine thread records as a real engine produces tokens: three requests of different lengths,
// then the counters equal what their updates said, and the gauges fall back to zero.
TEST(ServerMetrics, TheEngineLoopRecordsWhatTheEngineProduced) {
  const fs::path fixture = fs::path(SHARDLM_FIXTURES_DIR) / "models" / "llama-gqa-llama3rope-f32";
  const Tokenizer tokenizer = Tokenizer::from_dir(fixture);
  EngineOptions options;
  options.model_dir = fixture;
  options.max_sequences = 2;  // three requests: one waits
  options.max_seq_len = 64;
  const std::unique_ptr<Engine> engine = Engine::open(options);
  Scheduler scheduler(*engine, tokenizer, SchedulerOptions{16});
  EngineLoop loop(scheduler);

  std::mutex mutex;
  std::condition_variable done;
  int tokens = 0, finished = 0, prompt_tokens = 0;
  std::map<std::string, int> reasons;
  const std::vector<std::pair<int, int>> requests = {{9, 5}, {20, 1}, {3, 7}};  // prompt length, max_tokens
  for (const auto& [length, max_tokens] : requests) {
    SchedulerRequest request;
    for (int i = 0; i < length; ++i) request.prompt.push_back((i * 37 + length) % 600);
    request.max_tokens = max_tokens;
    RequestSink sink;
    sink.on_update = [&](const RequestUpdate& update) {
      const std::lock_guard lock(mutex);
      ++tokens;
      if (!update.finished) return;
      ++finished;
      prompt_tokens += update.prompt_tokens;
      ++reasons[update.finish_reason];
      done.notify_one();
    };
    sink.on_error = [&](int status, const std::string& message, const std::string&) {
      ADD_FAILURE() << status << " " << message;
    };
    loop.submit(std::move(request), std::move(sink));
  }
  {
    std::unique_lock lock(mutex);
    ASSERT_TRUE(done.wait_for(lock, std::chrono::seconds(60), [&] { return finished == 3; }));
  }
  EXPECT_EQ(tokens, 5 + 1 + 7);
  EXPECT_EQ(prompt_tokens, 9 + 20 + 3);

  // The gauges are set after the step's updates went out: wait for the engine thread to get there.
  Exposition e;
  for (int attempt = 0; attempt < 1000; ++attempt) {
    e = parse_exposition(loop.metrics().render());
    if (e.at("shardlm:num_requests_running") == 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_EQ(e.at("shardlm:num_requests_running"), 0);
  EXPECT_EQ(e.at("shardlm:num_requests_waiting"), 0);
  EXPECT_EQ(e.at("shardlm:kv_cache_usage_perc"), 0);
  EXPECT_EQ(e.at("shardlm:prompt_tokens_total"), prompt_tokens);
  EXPECT_EQ(e.at("shardlm:generation_tokens_total"), tokens);
  EXPECT_EQ(e.at("shardlm:request_success_total{finished_reason=\"length\"}"), reasons["length"]);
  EXPECT_EQ(e.at("shardlm:request_success_total{finished_reason=\"stop\"}"), reasons["stop"]);
  EXPECT_EQ(e.at("shardlm:time_to_first_token_seconds_count"), 3);
  EXPECT_EQ(e.at("shardlm:inter_token_latency_seconds_count"), tokens - 3);
  EXPECT_EQ(e.at("shardlm:e2e_request_latency_seconds_count"), 3);
  EXPECT_GT(e.at("shardlm:time_to_first_token_seconds_sum"), 0);
  // A request's whole life includes its first token's wait.
  EXPECT_GE(e.at("shardlm:e2e_request_latency_seconds_sum"), e.at("shardlm:time_to_first_token_seconds_sum"));
  // Every prompt token went through the model once (nothing was cached), then one row per later token.
  EXPECT_EQ(e.at("shardlm:iteration_tokens_total_sum"), prompt_tokens + tokens - 3);
  EXPECT_GT(e.at("shardlm:iteration_tokens_total_count"), 0);
  EXPECT_EQ(e.at("shardlm:engine_step_seconds_count"), e.at("shardlm:iteration_tokens_total_count"));
  EXPECT_GT(e.at("shardlm:engine_step_seconds_sum"), 0);
  EXPECT_GT(e.at("shardlm:step_host_seconds_total"), 0);
}

}  // namespace
}  // namespace shardlm::serve
