// `shardlm bench`: prefill and decode speed on random prompt tokens, as JSON. Decode steps are
// timed one by one so the median and p90 time per output token can be reported.
#include <fmt/core.h>
#include <nlohmann/json.hpp>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <random>

#include "commands.h"
#include "common_options.h"
#include "backend/cpu/read_bandwidth.h"
#include "core/error.h"
#include "model/llama_model.h"
#include "runtime/sampler.h"

namespace shardlm::cli {
namespace {

struct BenchOptions {
  ModelOptions model;
  int prompt_len = 128;
  int new_tokens = 32;
  int batch = 1;
};

double milliseconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
}

double percentile(std::vector<double> values, double fraction) {
  std::sort(values.begin(), values.end());
  return values[std::min(values.size() - 1, size_t(fraction * double(values.size())))];
}

void run_bench(const BenchOptions& options) {
  if (options.prompt_len < 1) fail("--prompt-len must be >= 1, got {}", options.prompt_len);
  if (options.new_tokens < 1) fail("--new-tokens must be >= 1, got {}", options.new_tokens);
  if (options.batch < 1) fail("--batch must be >= 1, got {}", options.batch);
  const LlamaModel model = LlamaModel::load(prepare_model_dir(options.model));
  const int64_t capacity = int64_t(options.prompt_len) + options.new_tokens;
  if (capacity > model.config().max_position_embeddings)
    fail("--prompt-len + --new-tokens = {} exceeds the model's max_position_embeddings {}", capacity,
         model.config().max_position_embeddings);

  std::mt19937 rng(1234);
  std::uniform_int_distribution<int32_t> random_token(0, model.config().vocab_size - 1);
  std::vector<KvCache> caches;
  for (int i = 0; i < options.batch; ++i) caches.push_back(model.make_cache(capacity));
  std::vector<KvCache*> cache_pointers;
  for (KvCache& cache : caches) cache_pointers.push_back(&cache);

  std::vector<TokenRow> rows;
  for (int sequence = 0; sequence < options.batch; ++sequence)
    for (int position = 0; position < options.prompt_len; ++position)
      rows.push_back({sequence, position, random_token(rng), position + 1 == options.prompt_len});

  // Warm-up: one token through every layer faults the mapped weights in before anything is timed.
  {
    KvCache warm_up_cache = model.make_cache(1);
    KvCache* warm_up[] = {&warm_up_cache};
    const TokenRow row{0, 0, 0, true};
    model.forward(std::span<const TokenRow>(&row, 1), warm_up);
  }
  const auto prefill_start = std::chrono::steady_clock::now();
  std::vector<float> logits = model.forward(rows, cache_pointers);
  const double prefill_ms = milliseconds_since(prefill_start);

  const int64_t vocab = model.config().vocab_size;
  std::vector<double> step_ms;
  for (int step = 0; step < options.new_tokens; ++step) {
    rows.clear();
    for (int sequence = 0; sequence < options.batch; ++sequence) {
      const int32_t token = argmax(std::span<const float>(logits.data() + sequence * vocab, size_t(vocab)));
      rows.push_back({sequence, options.prompt_len + step, token, true});
    }
    const auto step_start = std::chrono::steady_clock::now();
    logits = model.forward(rows, cache_pointers);
    step_ms.push_back(milliseconds_since(step_start));
  }
  double decode_total_ms = 0;
  for (double ms : step_ms) decode_total_ms += ms;
  const double prefill_tokens = double(options.prompt_len) * options.batch;
  // Decode reads every weight once per step; the LM head is read even when tied (counted once).
  double weight_bytes = 0;
  for (const auto& [name, tensor] : model.checkpoint().tensors()) weight_bytes += double(tensor.n_bytes);
  const double read_gb_per_s = cpu::measure_read_bandwidth();
  const double floor_ms = weight_bytes / (read_gb_per_s * 1e9) * 1e3;
  const double median_ms = percentile(step_ms, 0.5);
  const nlohmann::json report = {
      {"device", "cpu"},
      {"threads", omp_get_max_threads()},
      {"batch", options.batch},
      {"prompt_len", options.prompt_len},
      {"new_tokens", options.new_tokens},
      {"prefill_ms", prefill_ms},
      {"prefill_tokens_per_s", prefill_tokens / (prefill_ms / 1000.0)},
      {"time_per_output_token_ms_median", median_ms},
      {"time_per_output_token_ms_p90", percentile(step_ms, 0.9)},
      {"decode_tokens_per_s", double(options.new_tokens) * options.batch / (decode_total_ms / 1000.0)},
      {"weight_bytes", weight_bytes},
      {"memory_read_gb_per_s", read_gb_per_s},
      {"bandwidth_floor_ms_per_token", floor_ms},
      {"median_over_floor", median_ms / floor_ms},
  };
  fmt::print("{}\n", report.dump(2));
}

}  // namespace

void add_bench_command(CLI::App& app) {
  auto options = std::make_shared<BenchOptions>();
  CLI::App* command = app.add_subcommand("bench", "Measure prefill and decode speed on random prompt tokens");
  add_model_options(*command, options->model);
  command->add_option("--prompt-len", options->prompt_len, "Prompt length in tokens")->capture_default_str();
  command->add_option("--new-tokens", options->new_tokens, "Tokens to decode")->capture_default_str();
  command->add_option("--batch", options->batch, "Sequences decoded together")->capture_default_str();
  command->callback([options] { run_bench(*options); });
}

}  // namespace shardlm::cli
