// `shardlm generate`: streams the continuation of one prompt to stdout (or prints one JSON object
// per prompt with --json). Several prompts (--prompt, --prompt-file) run as one batch. Sampling
// defaults come from the model's generation_config.json, as transformers' generate() takes them;
// without one, greedy.
#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <optional>
#include <random>

#include "commands.h"
#include "common_options.h"
#include "io/generation_config.h"
#include "device_map_options.h"
#include "engine/engine.h"
#include "option_checks.h"
#include "prompt_options.h"
#include "core/error.h"
#include "runtime/eos_tokens.h"
#include "runtime/generator.h"
#ifdef SHARDLM_WITH_CUDA
#include "backend/cuda/device_query.h"
#endif

namespace shardlm::cli {
namespace {

struct GenerateOptions {
  ModelOptions model;
  std::string device = "cpu";
  int tp = 1;
  std::string tp_plan = "auto";
  bool expert_parallel = false;
  DeviceMapRequest device_map;
  PromptOptions prompt;
  int max_new_tokens = 128;
  std::optional<float> temperature;
  std::optional<int> top_k;
  std::optional<float> top_p;
  std::optional<float> min_p;
  std::optional<float> repetition_penalty;
  float presence_penalty = 0.0f, frequency_penalty = 0.0f;
  int64_t seed = 0;  // -1: a random seed, as llama.cpp takes it
  std::vector<std::string> stop;
  bool json = false;
};

// The seed to sample with: --seed, or for -1 one drawn now and printed, so a run can be repeated.
uint64_t sampling_seed(const GenerateOptions& options, const LaunchEnv& launch) {
  if (options.seed >= 0) return uint64_t(options.seed);
  // Every launched process would draw its own, and ranks that sample differently diverge.
  if (launch.distributed()) fail("--seed -1 draws a seed in each launched rank: give one seed to all of them");
  // 63 bits, so the printed seed is one --seed accepts.
  std::random_device random;
  const uint64_t seed = ((uint64_t(random()) << 32) | random()) & uint64_t(INT64_MAX);
  fmt::print(stderr, "[shardlm] --seed -1: sampling with seed {}\n", seed);
  return seed;
}

SamplingParams sampling_params(const GenerateOptions& options, const GenerationConfig& defaults, uint64_t seed) {
  SamplingParams params;
  params.seed = seed;
  if (defaults.do_sample.value_or(false)) {
    params.temperature = defaults.temperature.value_or(1.0f);
    params.top_k = defaults.top_k.value_or(50);  // transformers' GenerationConfig default
    params.top_p = defaults.top_p.value_or(1.0f);
    params.min_p = defaults.min_p.value_or(0.0f);
  }
  if (options.temperature) params.temperature = *options.temperature;
  if (options.top_k) params.top_k = *options.top_k;
  if (options.top_p) params.top_p = *options.top_p;
  if (options.min_p) params.min_p = *options.min_p;
  // Transformers' generate() applies the file's repetition_penalty whether or not it samples.
  params.repetition_penalty = options.repetition_penalty.value_or(defaults.repetition_penalty.value_or(1.0f));
  params.presence_penalty = options.presence_penalty;
  params.frequency_penalty = options.frequency_penalty;
  return params;
}

// Options that would have no effect in this run are refused, saying what they need.
void check_option_combination(const GenerateOptions& options, const LaunchEnv& launch) {
  if (options.tp_plan != "auto" && options.tp == 1 && !launch.distributed())
    fail("--tp-plan {} splits the model over tensor-parallel ranks: it needs --tp N (N >= 2) or a launcher",
         options.tp_plan);
  if (launch.distributed() && std::find(options.prompt.texts.begin(), options.prompt.texts.end(), "-") != options.prompt.texts.end())
    fail("--prompt - under a launcher: every rank needs the prompt, and standard input reaches only one; use --prompt-file");
}

void run_generate(const GenerateOptions& options) {
  const LaunchEnv launch = detect_launch_env(current_environment());
  check_option_combination(options, launch);
  const std::vector<std::string> prompts = read_prompts(options.prompt);
  if (prompts.empty()) fail("generate needs a prompt: --prompt TEXT, --prompt - (standard input) or --prompt-file FILE");
  const std::filesystem::path dir = prepare_model_dir(options.model);
  const DeviceSpec device = parse_device(options.device);
  const Tokenizer tokenizer = Tokenizer::from_dir(dir);
  const ModelConfig config = ModelConfig::from_dir(dir);
  const GenerationConfig generation = GenerationConfig::from_dir(dir);
  check_generation_token_ids(generation, config.vocab_size, (dir / "generation_config.json").string());
  if (launch.rank == 0) warn_about_unused_tensors(dir, config);

  GenerationOptions generation_options;
  generation_options.max_new_tokens = options.max_new_tokens;
  generation_options.sampling = sampling_params(options, generation, sampling_seed(options, launch));
  generation_options.stop = options.stop;
  generation_options.eos_token_ids = eos_token_ids(config, generation, tokenizer);

  std::vector<std::vector<int32_t>> prompt_ids;
  size_t longest_prompt = 0;
  for (const std::string& prompt : prompts) {
    prompt_ids.push_back(tokenizer.encode(prompt));
    longest_prompt = std::max(longest_prompt, prompt_ids.back().size());
  }
  const int64_t max_tokens = int64_t(longest_prompt) + options.max_new_tokens;

  // One prompt streams as it goes (echoed with the first piece, so nothing is printed when loading
  // fails); a batch prints each result when it is complete.
  const bool stream = !options.json && prompts.size() == 1;
  bool echoed = false;
  TextCallback on_text;
  if (stream) {
    on_text = [&](size_t, std::string_view piece) {
      if (!echoed) fmt::print("{}", prompts[0]);
      echoed = true;
      fmt::print("{}", piece);
      std::fflush(stdout);
    };
  }
  const auto start = std::chrono::steady_clock::now();
  EngineOptions engine_options;
  engine_options.model_dir = dir;
  engine_options.device = device;
  engine_options.max_sequences = int(prompt_ids.size());
  engine_options.max_seq_len = max_tokens;
  engine_options.tp = options.tp;
  engine_options.tp_plan = options.tp_plan;
  engine_options.expert_parallel = options.expert_parallel;
  engine_options.launch = launch;
  engine_options.cuda_devices = options.device_map.cuda_devices;
  if (!options.device_map.device_map.empty()) {
    if (launch.distributed() || options.tp > 1)
      fail("--device-map with tensor parallelism (--tp or a launcher) is not supported: use one or the other");
    engine_options.device_map =
        plan_on_this_machine(options.device_map, dir, config, max_tokens, int(prompt_ids.size()), device.is_cuda);
    engine_options.offload_exec = parse_offload_exec(options.device_map.offload_exec);
  }
  const std::unique_ptr<Engine> engine = Engine::open(engine_options);
  if (const std::string summary = engine->load_summary(); !summary.empty() && engine->leads())
    fmt::print(stderr, "[shardlm] {}\n", summary);
  if (!engine->leads()) {
    engine->follow();  // a launched rank > 0: rank 0 tokenizes, schedules and prints
    return;
  }
  const std::vector<GenerationResult> results = generate(*engine, tokenizer, prompt_ids, generation_options, on_text);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  size_t n_generated = 0;
  for (size_t i = 0; i < results.size(); ++i) {
    const GenerationResult& result = results[i];
    n_generated += result.output_ids.size();
    if (options.json) {
      const nlohmann::json object = {{"prompt_ids", result.prompt_ids},
                                     {"output_ids", result.output_ids},
                                     {"text", result.text},
                                     {"finish_reason", result.finish_reason}};
      fmt::print("{}\n", object.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
    } else if (stream) {
      fmt::print("{}\n", echoed ? "" : prompts[0]);
    } else {
      fmt::print("--- prompt {} ---\n{}{}\n", i, prompts[i], result.text);
    }
  }
  std::fflush(stdout);  // the text first, then the timing line on stderr
  fmt::print(stderr, "[shardlm] {} new tokens in {:.2f} s ({:.1f} tokens/s)\n", n_generated, seconds,
             seconds > 0 ? double(n_generated) / seconds : 0.0);
}

}  // namespace

void add_generate_command(CLI::App& app) {
  auto options = std::make_shared<GenerateOptions>();
  CLI::App* command = app.add_subcommand("generate", "Generate text from a prompt");
  add_model_options(*command, options->model);
  add_device_option(*command, options->device);
  command->add_option("--tp,--tensor-parallel-size", options->tp, "Tensor-parallel ranks, one thread each: GPUs cuda:N.. with --device cuda:N (NCCL; or those of --cuda-devices), else CPU ranks")
      ->check(integer_in(1, INT32_MAX))
      ->capture_default_str();
  add_tp_plan_options(*command, options->tp_plan, options->expert_parallel);
  add_device_map_options(*command, options->device_map);
  add_cuda_devices_option(*command, options->device_map);
  add_prompt_options(*command, options->prompt);
  command->add_option("--max-new-tokens,-n", options->max_new_tokens, "Number of tokens to generate at most")
      ->check(integer_in(0, INT32_MAX))
      ->capture_default_str();
  command->add_option("--temperature", options->temperature, "Sampling temperature; 0 is greedy")
      ->check(finite_number());
  command->add_option("--top-k", options->top_k, "Keep the k most likely tokens (0 disables)")
      ->check(integer_in(0, INT32_MAX));
  command->add_option("--top-p", options->top_p, "Keep the smallest set of tokens with probability >= p")
      ->check(finite_number());
  command->add_option("--min-p", options->min_p,
                      "Keep tokens whose probability is at least this share of the likeliest's (0 disables)")
      ->check(finite_number());
  command->add_option("--repetition-penalty", options->repetition_penalty,
                      "Divide the positive logits (multiply the negative) of every token already in the prompt or "
                      "output by this, as Transformers does; 1 disables (default: generation_config.json's, else 1)")
      ->check(finite_number());
  command->add_option("--presence-penalty", options->presence_penalty,
                      "Subtract this from the logits of tokens the output already holds (OpenAI's, -2 to 2)")
      ->check(finite_number())
      ->capture_default_str();
  command->add_option("--frequency-penalty", options->frequency_penalty,
                      "Subtract this times a token's count in the output from its logit (OpenAI's, -2 to 2)")
      ->check(finite_number())
      ->capture_default_str();
  command->add_option("--seed", options->seed, "Random seed for sampling; -1 draws one (printed on stderr)")
      ->check(integer_in(-1, INT64_MAX))
      ->capture_default_str();
  command->add_option("--stop", options->stop, "Stop when this text appears (repeatable)");
  command->add_flag("--json", options->json,
                    R"(Print {"prompt_ids": [...], "output_ids": [...], "text": "..."} for each prompt)");
  command->callback([options] { run_generate(*options); });
}

}  // namespace shardlm::cli
