// `shardlm bench`: prefill and decode speed on random prompt tokens (or a given prompt), as JSON. Decode steps are
// timed one by one (each ends when its token ids are on the host) so the median and p90 time per
// output token can be reported, next to the bandwidth floor: weight bytes over measured memory
// bandwidth. `--random SHAPE` benchmarks a built-in shape with random weights on the GPU, so big
// models need no checkpoint; with `--save DIR` it writes them as one instead, for the CPU.
#include <fmt/core.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <random>

#include "backend/cpu/read_bandwidth.h"
#include "commands.h"
#include "common_options.h"
#include "core/error.h"
#include "device_map_options.h"
#include "engine/engine.h"
#include "model/llama_model.h"
#include "ops/sampler.h"
#include "option_checks.h"
#include "plan/parameter_count.h"
#include "plan/tp_plan.h"
#include "prompt_options.h"
#include "random_checkpoint.h"
#include "tokenizer/tokenizer.h"
#ifdef SHARDLM_WITH_CUDA
#include "backend/cuda/copy_bandwidth.h"
#include "backend/cuda/device_query.h"
#endif

namespace shardlm::cli {
namespace {

struct BenchOptions {
  ModelOptions model;
  std::string device = "cpu";
  std::string random_shape;
  std::string save_dir;            // --save: write the --random shape's checkpoint there, time nothing
  PromptOptions prompt;            // --prompt/--prompt-file: one real prompt instead of random tokens
  std::vector<int32_t> prompt_ids;  // that prompt's tokens (then prompt_len is their count)
  int prompt_len = 128;
  int new_tokens = 32;
  int batch = 1;
  int tp = 1;
  std::string tp_plan = "auto";
  bool expert_parallel = false;
  DeviceMapRequest device_map;
};

using Clock = std::chrono::steady_clock;

// Decode steps between two samples of the CPU's read bandwidth in an offload benchmark.
constexpr int kDecodeStepsPerProbe = 16;

double milliseconds_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

double percentile(std::vector<double> values, double fraction) {
  std::sort(values.begin(), values.end());
  return values[std::min(values.size() - 1, size_t(fraction * double(values.size())))];
}

// The prompt rows of every sequence (the given prompt, or random tokens), logits wanted at each
// prompt's end.
std::vector<TokenRow> prompt_rows(const BenchOptions& options, int vocab_size) {
  std::mt19937 rng(1234);
  std::uniform_int_distribution<int32_t> random_token(0, vocab_size - 1);
  std::vector<TokenRow> rows;
  for (int sequence = 0; sequence < options.batch; ++sequence)
    for (int position = 0; position < options.prompt_len; ++position) {
      const int32_t token = options.prompt_ids.empty() ? random_token(rng) : options.prompt_ids[size_t(position)];
      rows.push_back({sequence, position, token, position + 1 == options.prompt_len});
    }
  return rows;
}

struct Timings {
  double prefill_ms = 0;
  std::vector<double> step_ms;
};

// Called untimed after each decode step with its index (the offload benchmark samples the CPU's
// read bandwidth there).
using BetweenSteps = std::function<void(int step_index)>;

// Times one prefill and new_tokens decode steps; step(rows) returns the chosen token per sequence.
template <typename Step>
Timings time_generation(const BenchOptions& options, int vocab_size, Step&& step, const BetweenSteps& between = {}) {
  Timings timings;
  std::vector<TokenRow> rows = prompt_rows(options, vocab_size);
  const Clock::time_point prefill_start = Clock::now();
  std::vector<int32_t> tokens = step(rows);
  timings.prefill_ms = milliseconds_since(prefill_start);
  for (int index = 0; index < options.new_tokens; ++index) {
    rows.clear();
    for (int sequence = 0; sequence < options.batch; ++sequence)
      rows.push_back({sequence, options.prompt_len + index, tokens[size_t(sequence)], true});
    const Clock::time_point step_start = Clock::now();
    tokens = step(rows);
    timings.step_ms.push_back(milliseconds_since(step_start));
    if (between) between(index);
  }
  return timings;
}

// time_generation's steps through an Engine: each sequence's rows become its chunk, and a prefill
// (rows from position 0) starts the engine's sequences afresh.
class EngineSteps {
 public:
  EngineSteps(Engine& engine, int batch) : engine_(engine), batch_(batch) {}

  std::vector<int32_t> operator()(std::span<const TokenRow> rows) {
    if (rows.front().position == 0) {
      for (int id : ids_) engine_.remove_sequence(id);
      ids_.clear();
      for (int sequence = 0; sequence < batch_; ++sequence) ids_.push_back(engine_.add_sequence(SamplingParams{}));
    }
    std::vector<std::vector<int32_t>> tokens(ids_.size());
    for (const TokenRow& row : rows) tokens[size_t(row.sequence)].push_back(row.token);
    std::vector<SequenceChunk> chunks;
    for (size_t sequence = 0; sequence < ids_.size(); ++sequence) chunks.push_back({ids_[sequence], tokens[sequence], true});
    return engine_.step(chunks);
  }

 private:
  Engine& engine_;
  int batch_;
  std::vector<int> ids_;
};

#ifdef SHARDLM_WITH_CUDA
// A short untimed run first (cuBLASLt plans, the decode graph capture and clocks), then the timed one.
template <typename Step>
Timings time_generation_after_warm_up(const BenchOptions& options, int vocab_size, Step&& step,
                                      const BetweenSteps& between = {}) {
  BenchOptions warm_up = options;
  warm_up.new_tokens = std::min(options.new_tokens, 4);
  time_generation(warm_up, vocab_size, step);
  return time_generation(options, vocab_size, step, between);
}
#endif

nlohmann::json report(const BenchOptions& options, const Timings& timings, double weight_bytes,
                      double bandwidth_gb_per_s) {
  double decode_total_ms = 0;
  for (double ms : timings.step_ms) decode_total_ms += ms;
  const double median_ms = percentile(timings.step_ms, 0.5);
  const double floor_ms = weight_bytes / (bandwidth_gb_per_s * 1e9) * 1e3;
  return {
      {"batch", options.batch},
      {"prompt_len", options.prompt_len},
      {"new_tokens", options.new_tokens},
      {"prefill_ms", timings.prefill_ms},
      {"prefill_tokens_per_s", double(options.prompt_len) * options.batch / (timings.prefill_ms / 1000.0)},
      {"time_per_output_token_ms_median", median_ms},
      {"time_per_output_token_ms_p90", percentile(timings.step_ms, 0.9)},
      {"decode_tokens_per_s", double(options.new_tokens) * options.batch / (decode_total_ms / 1000.0)},
      {"weight_bytes", weight_bytes},
      {"memory_bandwidth_gb_per_s", bandwidth_gb_per_s},
      {"bandwidth_floor_ms_per_token", floor_ms},
      {"median_over_floor", median_ms / floor_ms},
      {"step_ms", timings.step_ms},  // every decode step, to see outliers and mode switches
  };
}

void check_lengths(const BenchOptions& options, const ModelConfig& config) {
  const int64_t needed = int64_t(options.prompt_len) + options.new_tokens;
  if (needed > config.max_position_embeddings)
    fail("--prompt-len + --new-tokens = {} exceeds the model's max_position_embeddings {}", needed,
         config.max_position_embeddings);
}

// What one decode step of `batch` rows reads of these weights (as they are held): every weight
// (the tied head once) but the experts no row chooses, routing taken as even
// (plan/parameter_count.h).
double decode_weight_bytes(const ModelConfig& config, const std::vector<WeightSpec>& weights, int batch) {
  return decode_step_bytes(count_parameters(config, weights), config.moe, batch);
}

void run_bench_cpu(const BenchOptions& options) {
  EngineOptions engine_options;
  engine_options.model_dir = prepare_model_dir(options.model);
  const ModelConfig config = ModelConfig::from_dir(engine_options.model_dir);
  check_lengths(options, config);
  engine_options.max_sequences = options.batch;
  engine_options.max_seq_len = int64_t(options.prompt_len) + options.new_tokens;
  const std::unique_ptr<Engine> engine = Engine::open(engine_options);
  // Warm-up: one token through every layer faults the mapped weights in before anything is timed.
  const int warm_up = engine->add_sequence(SamplingParams{});
  const std::vector<int32_t> first_token = {0};
  engine->step(std::vector<SequenceChunk>{{warm_up, first_token, true}});
  engine->remove_sequence(warm_up);

  const Timings timings = time_generation(options, config.vocab_size, EngineSteps(*engine, options.batch));
  const double weight_bytes =
      decode_weight_bytes(config, weight_specs(Checkpoint::open(engine_options.model_dir)), options.batch);
  nlohmann::json result = report(options, timings, weight_bytes, cpu::measure_read_bandwidth());
  result["device"] = "cpu";
  result["threads"] = omp_get_max_threads();
  fmt::print("{}\n", result.dump(2));
}

#ifdef SHARDLM_WITH_CUDA
// Offloaded bytes must cross PCIe (stream), or the CPU must read what a row uses of them (cpu),
// once per decode step: the two floors. The CPU's is given for the median of the read-bandwidth
// samples taken around the decode and, strictest, for the fastest sample.
nlohmann::json offload_json(const OffloadReport& offload, const std::vector<double>& cpu_read_samples,
                            double median_step_ms) {
  if (cpu_read_samples.empty()) fail("the offload benchmark took no sample of the CPU's read bandwidth");
  const double bytes = offload.speeds.offloaded_bytes, cpu_bytes = offload.speeds.cpu_row_bytes;
  auto floor_ms = [](double read, double gb_per_s) { return read / (gb_per_s * 1e9) * 1e3; };
  const double cpu_read_median = percentile(cpu_read_samples, 0.5);
  const double stream_floor_ms = floor_ms(bytes, offload.speeds.host_to_device_gbps);
  const double cpu_floor_ms = floor_ms(cpu_bytes, cpu_read_median);
  const double cpu_floor_strictest_ms =
      floor_ms(cpu_bytes, *std::max_element(cpu_read_samples.begin(), cpu_read_samples.end()));
  nlohmann::json json = {
      {"exec", offload_exec_name(offload.exec)},
      {"offloaded_bytes", bytes},
      {"cpu_row_bytes", cpu_bytes},  // what one row computed on the CPU reads: a MoE layer's chosen experts only
      {"host_to_device_gb_per_s", offload.speeds.host_to_device_gbps},
      {"cpu_read_gb_per_s_at_load", offload.speeds.cpu_read_gbps},
      {"cpu_read_gb_per_s_samples", cpu_read_samples},  // in the order taken
      {"cpu_read_gb_per_s_median", cpu_read_median},
      {"stream_floor_ms", stream_floor_ms},
      {"cpu_floor_ms", cpu_floor_ms},
      {"cpu_floor_strictest_ms", cpu_floor_strictest_ms},
      {"median_over_better_floor", median_step_ms / std::min(stream_floor_ms, cpu_floor_ms)},
      {"median_over_strictest_floor", median_step_ms / std::min(stream_floor_ms, cpu_floor_strictest_ms)},
      {"stream_steps", offload.stream_steps},
      {"cpu_steps", offload.cpu_steps},
      {"overlapped_tail_units", offload.overlapped_tail_units},
      {"cpu_step_bytes", offload.cpu_step_bytes},
  };
  // What the CPU's share of a decode step streamed, against the probe's figures above: on average
  // (bursts of the host's other work and the untimed warm-up's steps included) and in the fastest
  // step. The step counts above include the warm-up too.
  if (offload.cpu_one_row_steps > 0 && offload.cpu_one_row_seconds_fastest > 0) {
    json["cpu_step_gb_per_s"] =
        offload.cpu_step_bytes / (offload.cpu_one_row_seconds / double(offload.cpu_one_row_steps)) / 1e9;
    json["cpu_step_gb_per_s_fastest"] = offload.cpu_step_bytes / offload.cpu_one_row_seconds_fastest / 1e9;
  }
  return json;
}

// --cpu-moe: each decode step the CPU reads the chosen experts of the layers that keep theirs in
// cpu memory, in their stored dtype (top_k per layer for one row; up to all of them for a batch),
// and the GPU the rest of the active weights in bf16. Floors, for batch 1 only: the CPU's share
// over its read bandwidth (the median of the samples), the GPU's over its copy bandwidth, and their
// sum (nothing overlaps within a layer).
nlohmann::json cpu_moe_json(const ModelConfig& config, const Checkpoint& checkpoint, const std::vector<bool>& experts_in_cpu,
                            const std::vector<double>& cpu_read_samples, double gpu_gb_per_s, double median_step_ms,
                            int batch, const HostExpertTimes& times, int64_t steps) {
  if (cpu_read_samples.empty()) fail("the --cpu-moe benchmark took no sample of the CPU's read bandwidth");
  const int layers = int(std::count(experts_in_cpu.begin(), experts_in_cpu.end(), true));
  const double cpu_read_median = percentile(cpu_read_samples, 0.5);
  nlohmann::json json = {{"layers_with_experts_in_cpu", layers},
                         {"cpu_read_gb_per_s_samples", cpu_read_samples},
                         {"cpu_read_gb_per_s_median", cpu_read_median}};
  if (batch != 1) return json;
  const ParameterCount bf16 = count_parameters(config, weight_specs(config, DType::BF16));
  const ParameterCount stored = count_parameters(config, weight_specs(checkpoint));
  const double chosen = double(layers) * config.moe.num_experts_per_tok;
  const double cpu_bytes = chosen * double(stored.bytes_per_expert);
  const double gpu_bytes = double(bf16.active_bytes) - chosen * double(bf16.bytes_per_expert);
  const double cpu_floor_ms = cpu_bytes / (cpu_read_median * 1e9) * 1e3;
  const double gpu_floor_ms = gpu_bytes / (gpu_gb_per_s * 1e9) * 1e3;
  json.update({
      {"cpu_expert_bytes_per_token", cpu_bytes},
      {"gpu_bytes_per_token", gpu_bytes},
      {"cpu_expert_floor_ms", cpu_floor_ms},
      {"gpu_floor_ms", gpu_floor_ms},
      {"median_over_cpu_expert_floor", median_step_ms / cpu_floor_ms},
      {"median_over_summed_floor", median_step_ms / (cpu_floor_ms + gpu_floor_ms)},
  });
  // Where a token's time went on the host, as means over `steps` timed steps (`times` holds theirs
  // alone; an expert's first use in a run also pays its page faults): the CPU's experts, the read
  // speed they reached over the layers that ran, and the wait for the GPU's rows.
  if (steps > 0 && times.one_row_calls > 0 && times.compute_seconds > 0) {
    const double bytes_per_layer = cpu_bytes / double(layers);
    json.update({
        {"cpu_expert_compute_ms_per_token_mean", times.compute_seconds / double(steps) * 1e3},
        {"cpu_expert_gb_per_s_achieved", bytes_per_layer * double(times.one_row_calls) / times.compute_seconds / 1e9},
        {"gpu_wait_ms_per_token_mean", times.wait_seconds / double(steps) * 1e3},
    });
  }
  return json;
}

// One GPU (checkpoint or random weights, whole or on a device map), or --tp N GPUs, one thread each
// (rank 0 leads the steps, which every rank runs). The floor is a rank's share of the weights over
// one GPU's copy bandwidth.
void run_bench_cuda(const BenchOptions& options, const DeviceSpec& device) {
  const bool random_weights = !options.random_shape.empty();
  if (options.tp > 1 && random_weights) fail("--tp needs --model DIR: random weights cannot be split");
  if (options.tp > 1 && !options.device_map.device_map.empty()) fail("--tp and --device-map cannot be combined");
  if (random_weights && !options.device_map.device_map.empty())
    fail("--device-map needs --model DIR: random weights have no checkpoint to offload from");
  if (options.tp == 1) cuda::require_cuda_device(device.index);
  EngineOptions engine_options;
  if (random_weights) engine_options.random_weights = random_shape_config(options.random_shape);
  else engine_options.model_dir = prepare_model_dir(options.model);
  const ModelConfig config = random_weights ? *engine_options.random_weights : ModelConfig::from_dir(engine_options.model_dir);
  check_lengths(options, config);
  engine_options.device = device;
  engine_options.max_sequences = options.batch;
  engine_options.max_seq_len = int64_t(options.prompt_len) + options.new_tokens;
  engine_options.max_rows_per_pass = std::max(options.prompt_len, 16);
  engine_options.tp = options.tp;
  engine_options.tp_plan = options.tp_plan;
  engine_options.expert_parallel = options.expert_parallel;
  if (!options.device_map.device_map.empty()) {
    engine_options.device_map = plan_on_this_machine(options.device_map, engine_options.model_dir, config,
                                                     engine_options.max_seq_len, options.batch, true);
    engine_options.offload_exec = parse_offload_exec(options.device_map.offload_exec);
  }
  engine_options.cuda_devices = options.device_map.cuda_devices;
  const std::unique_ptr<Engine> engine = Engine::open(engine_options);
  const RankReport loaded = engine->report();
  // With weights offloaded, the CPU's read bandwidth is sampled before the run and after every
  // kDecodeStepsPerProbe timed steps: on a shared host it moves with other tenants' load, and the
  // one probe taken at load does not say what the decode had.
  std::optional<cpu::ReadBandwidthProbe> probe;
  std::vector<double> cpu_read_samples;
  const std::vector<bool> experts_in_cpu =
      engine_options.device_map ? engine_options.device_map->placement.experts_in_cpu : std::vector<bool>{};
  const bool cpu_moe = std::find(experts_in_cpu.begin(), experts_in_cpu.end(), true) != experts_in_cpu.end();
  if (loaded.offload || cpu_moe) {
    probe.emplace();
    cpu_read_samples.push_back(probe->measure());
  }
  // The host's expert times are taken once the timed run's first step is done: what comes after it
  // is averaged (the warm-up and that first step are left out).
  HostExpertTimes after_first_step;
  const Timings timings = time_generation_after_warm_up(
      options, config.vocab_size, EngineSteps(*engine, options.batch), [&](int index) {
        if (index == 0) after_first_step = engine->report().host_experts;
        if (probe && (index + 1) % kDecodeStepsPerProbe == 0) cpu_read_samples.push_back(probe->measure());
      });

  const RankReport ran = engine->report();
  const double copy_gb_per_s = cuda::measure_copy_bandwidth(device.index);
  const double weight_bytes = decode_weight_bytes(config, weight_specs(config, DType::BF16), options.batch);
  // Ranks sharing a GPU (--cuda-devices 0,0) read their shares one after another from its memory.
  const std::vector<int>& rank_gpus = options.device_map.device_map.empty() ? engine_options.cuda_devices : std::vector<int>{};
  int64_t ranks_per_gpu = 1;
  for (const int gpu : rank_gpus) ranks_per_gpu = std::max<int64_t>(ranks_per_gpu, std::ranges::count(rank_gpus, gpu));
  nlohmann::json result = report(options, timings, weight_bytes / options.tp * double(ranks_per_gpu), copy_gb_per_s);
  if (!rank_gpus.empty()) result["device"] = fmt::format("cuda:{}", fmt::join(rank_gpus, ","));
  else if (options.tp > 1) result["device"] = fmt::format("cuda:{}..cuda:{}", device.index, device.index + options.tp - 1);
  else result["device"] = fmt::format("cuda:{}", device.index);
  if (options.tp > 1) result["tp"] = options.tp;
  result["model"] = random_weights ? "random:" + options.random_shape : engine_options.model_dir.string();
  result["device_memory_used_bytes"] = ran.device_memory_used;
  if (!random_weights && ran.load_bytes > 0) {
    const double h2d_gb_per_s = cuda::measure_host_to_device_bandwidth(device.index);
    result["load_seconds"] = ran.load_seconds;
    result["load_gb_per_s"] = ran.load_bytes / 1e9 / ran.load_seconds;
    result["host_to_device_gb_per_s"] = h2d_gb_per_s;
    result["load_over_copy_time"] = ran.load_seconds / (ran.load_bytes / 1e9 / h2d_gb_per_s);
  }
  if (engine_options.device_map) {
    result["device_map"] = strategy_name(engine_options.device_map->applied);
    const double median_ms = result["time_per_output_token_ms_median"].get<double>();
    if (ran.offload) result["offload"] = offload_json(*ran.offload, cpu_read_samples, median_ms);
    if (cpu_moe)
      result["cpu_moe"] = cpu_moe_json(config, Checkpoint::open(engine_options.model_dir), experts_in_cpu, cpu_read_samples,
                                       copy_gb_per_s, median_ms, options.batch, ran.host_experts - after_first_step,
                                       int64_t(options.new_tokens) - 1);
  }
  fmt::print("{}\n", result.dump(2));
}
#endif

void run_bench(const BenchOptions& given) {
  if (!given.save_dir.empty()) {
    save_random_checkpoint(given.random_shape, given.save_dir);
    fmt::print(stderr, "[shardlm] wrote random weights of {} to {}\n", given.random_shape, given.save_dir);
    return;
  }
  BenchOptions options = given;
  const std::vector<std::string> prompts = read_prompts(options.prompt);
  if (prompts.size() > 1) fail("bench takes one prompt (--prompt or --prompt-file); --batch repeats it");
  if (!prompts.empty()) {
    if (!options.random_shape.empty()) fail("--prompt needs --model DIR: a --random shape has no tokenizer");
    options.prompt_ids = Tokenizer::from_dir(prepare_model_dir(options.model)).encode(prompts[0]);
    if (options.prompt_ids.empty()) fail("--prompt: the prompt has no tokens");
    options.prompt_len = int(options.prompt_ids.size());
  }
  const DeviceSpec device = parse_device(options.device);
  if (!options.device_map.cuda_devices.empty() && options.device_map.device_map.empty() && options.tp == 1)
    fail("--cuda-devices says where a device map's GPUs or the --tp ranks run: it needs --device-map or --tp");
  if (!device.is_cuda) {
    if (!options.random_shape.empty()) fail("--random needs a GPU (--device cuda:N)");
    if (!options.device_map.device_map.empty()) fail("bench --device-map needs a GPU (--device cuda:N)");
    if (options.tp > 1) fail("bench --tp needs GPUs (--device cuda:N)");
    if (options.expert_parallel) fail("bench --enable-expert-parallel splits experts over --tp GPUs (--device cuda:N)");
    run_bench_cpu(options);
    return;
  }
#ifdef SHARDLM_WITH_CUDA
  run_bench_cuda(options, device);
#else
  fail("--device cuda:{}: this shardlm was built without the CUDA backend", device.index);
#endif
}

}  // namespace

void add_bench_command(CLI::App& app) {
  auto options = std::make_shared<BenchOptions>();
  CLI::App* command = app.add_subcommand("bench", "Measure prefill and decode speed on random prompt tokens");
  add_model_options(*command, options->model);
  add_device_option(*command, options->device);
  command->add_option("--random", options->random_shape,
                      "Random weights of a built-in shape (bench/shapes: llama3-8b, llama3-70b, qwen2.5-7b, "
                      "qwen3-8b, mistral-7b, qwen3-30b-a3b, mixtral-8x7b) or a config.json path; GPU only, "
                      "unless with --save");
  command->add_option("--save", options->save_dir,
                      "With --random: write the random weights to DIR as a checkpoint (config.json, "
                      "model.safetensors) and exit; benchmark it with --model DIR on the CPU or a device map")
      ->needs(command->get_option("--random"));
  add_prompt_options(*command, options->prompt);
  command->add_option("--prompt-len", options->prompt_len, "Prompt length in random tokens")
      ->check(integer_in(1, INT32_MAX))
      ->excludes(command->get_option("--prompt"))
      ->excludes(command->get_option("--prompt-file"))
      ->capture_default_str();
  command->add_option("--new-tokens", options->new_tokens, "Tokens to decode")
      ->check(integer_in(1, INT32_MAX))
      ->capture_default_str();
  command->add_option("--batch", options->batch, "Sequences decoded together")
      ->check(integer_in(1, INT32_MAX))
      ->capture_default_str();
  add_device_map_options(*command, options->device_map);
  add_cuda_devices_option(*command, options->device_map);
  command->add_option("--tp,--tensor-parallel-size", options->tp, "Tensor-parallel GPUs from --device on (NCCL), or those of --cuda-devices")
      ->check(integer_in(1, INT32_MAX))
      ->capture_default_str();
  add_tp_plan_options(*command, options->tp_plan, options->expert_parallel);
  command->callback([options] { run_bench(*options); });
}

}  // namespace shardlm::cli
