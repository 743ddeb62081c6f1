// `shardlm serve`: an OpenAI-compatible server (POST /v1/completions and /v1/chat/completions,
// GET /v1/models, /health, /metrics, /tokenize, /detokenize) over one Engine with continuous
// batching. Option names are vLLM's. Under a launcher (`shardlm launch`, torchrun) rank 0 serves
// and schedules, and every other rank only runs the steps rank 0 sends until it stops.
#include <fmt/core.h>
#include <sys/resource.h>

#include <algorithm>
#include <csignal>
#include <filesystem>
#include <memory>

#include "commands.h"
#include "common_options.h"
#include "chat/chat_template.h"
#include "core/error.h"
#include "device_map_options.h"
#include "engine/engine.h"
#include "io/generation_config.h"
#include "parallel/launch_env.h"
#include "plan/memory_size.h"
#include "option_checks.h"
#include "runtime/eos_tokens.h"
#include "runtime/scheduler.h"
#include "serve/engine_loop.h"
#include "serve/http_server.h"
#include "tokenizer/tokenizer.h"

namespace shardlm::cli {
namespace {

struct ServeOptions {
  ModelOptions model;
  std::string device = "cpu";
  int tp = 1;
  std::string tp_plan = "auto";
  bool expert_parallel = false;
  DeviceMapRequest device_map;
  std::string host = "127.0.0.1";
  int port = 8000;
  std::string served_model_name;
  int max_num_seqs = 16;
  int max_num_batched_tokens = 2048;
  int64_t max_model_len = 0;
  int block_size = 16;
  std::string kv_cache_memory;
  double gpu_memory_utilization = 0;
  bool gpu_memory_utilization_given = false;
  bool enable_prefix_caching = true;
  std::string api_key;
  std::string chat_template;
  bool auto_tool_choice = false;
  std::string tool_call_parser;
  std::string reasoning_parser;
  std::string generation_config = "auto";
};

// --generation-config: where requests' sampling defaults come from. The model's generation_config.json
// (auto), the one in another directory, or none (vllm: OpenAI's defaults).
GenerationConfig sampling_source(const std::string& choice, const std::filesystem::path& model_dir,
                                 const GenerationConfig& model_generation) {
  if (choice == "vllm") return {};
  std::filesystem::path dir = model_dir;
  GenerationConfig source = model_generation;
  if (choice != "auto") {
    dir = choice;
    if (!std::filesystem::is_regular_file(dir / "generation_config.json"))
      fail("--generation-config {}: no generation_config.json there (auto: the model's own; vllm: none)", choice);
    source = GenerationConfig::from_dir(dir);
  }
  // Its top_p would become every request's, and a sampler cannot keep no tokens at all.
  if (source.top_p && *source.top_p <= 0.0f)
    fail("{}: \"top_p\" 0 would keep no token for any request: use --generation-config vllm, or give one in (0, 1]",
         (dir / "generation_config.json").string());
  return source;
}

// The defaults taken from `source`, saying which.
serve::SamplingDefaults announce_sampling_defaults(const std::string& choice, const GenerationConfig& source) {
  const std::string file = choice == "auto" ? std::string("the model's generation_config.json")
                                            : (std::filesystem::path(choice) / "generation_config.json").string();
  const serve::SamplingDefaults defaults = serve::SamplingDefaults::from(source);
  if (const std::string described = defaults.describe(); !described.empty()) {
    // vLLM does not read do_sample either; Transformers' generate() (and shardlm generate) would decode greedily.
    const bool greedy_in_transformers = source.do_sample == false && defaults.temperature > 0.0f;
    fmt::print("[shardlm] default sampling from {}: {}{} (use --generation-config vllm for OpenAI's defaults)\n", file,
               described, greedy_in_transformers ? "; its do_sample false is not read, as in vLLM" : "");
  }
  return defaults;
}

// Every connection holds a file descriptor: the soft limit (often 1024) goes up to the hard one.
void raise_open_file_limit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur >= limit.rlim_max) return;
  limit.rlim_cur = limit.rlim_max;
  setrlimit(RLIMIT_NOFILE, &limit);
}

void run_serve(const ServeOptions& options) {
  std::optional<serve::ToolCallFormat> tool_format;
  if (options.auto_tool_choice) tool_format = serve::tool_call_format(options.tool_call_parser);
  std::optional<serve::ReasoningFormat> reasoning_format;
  if (!options.reasoning_parser.empty()) reasoning_format = serve::reasoning_format(options.reasoning_parser);
  raise_open_file_limit();
  const std::filesystem::path dir = prepare_model_dir(options.model);
  const Tokenizer tokenizer = Tokenizer::from_dir(dir);
  const std::optional<chat::ChatTemplate> chat_template = chat::ChatTemplate::load(dir, options.chat_template);
  const ModelConfig config = ModelConfig::from_dir(dir);
  const GenerationConfig generation = GenerationConfig::from_dir(dir);
  check_generation_token_ids(generation, config.vocab_size, (dir / "generation_config.json").string());
  const GenerationConfig sampling = sampling_source(options.generation_config, dir, generation);
  const int64_t max_model_len =
      options.max_model_len > 0 ? options.max_model_len : std::min<int64_t>(config.max_position_embeddings, 4096);
  if (max_model_len > config.max_position_embeddings)
    fail("--max-model-len {} exceeds the model's max_position_embeddings {}", max_model_len,
         config.max_position_embeddings);

  EngineOptions engine_options;
  engine_options.model_dir = dir;
  engine_options.device = parse_device(options.device);
  engine_options.max_sequences = options.max_num_seqs;
  engine_options.max_seq_len = max_model_len;
  engine_options.tp = options.tp;
  engine_options.tp_plan = options.tp_plan;
  engine_options.expert_parallel = options.expert_parallel;
  engine_options.launch = detect_launch_env(current_environment());
  engine_options.cuda_devices = options.device_map.cuda_devices;
  engine_options.kv_block_size = options.block_size;
  if (!options.kv_cache_memory.empty()) {
    engine_options.kv_cache_bytes = parse_memory_size(options.kv_cache_memory, "--kv-cache-memory");
    if (engine_options.kv_cache_bytes <= 0) fail("--kv-cache-memory must be above 0, got \"{}\"", options.kv_cache_memory);
  }
  if (options.gpu_memory_utilization_given && options.gpu_memory_utilization <= 0)
    fail("--gpu-memory-utilization must be a share in (0, 1], got {}", options.gpu_memory_utilization);
  engine_options.gpu_memory_utilization = options.gpu_memory_utilization;
  engine_options.prefix_caching = options.enable_prefix_caching;
  if (!options.device_map.device_map.empty()) {
    if (options.tp > 1 || engine_options.launch.distributed())
      fail("--device-map with tensor parallelism (--tp or a launcher) is not supported: use one or the other");
    engine_options.device_map = plan_on_this_machine(options.device_map, dir, config, max_model_len,
                                                     options.max_num_seqs, engine_options.device.is_cuda);
    engine_options.offload_exec = parse_offload_exec(options.device_map.offload_exec);
  }
  const std::unique_ptr<Engine> engine = Engine::open(engine_options);
  if (!engine->leads()) {
    // A launched rank > 0 stops when rank 0 does (a signal to the whole group reaches rank 0 too),
    // so that rank 0 can end the running requests and the steps cleanly.
    std::signal(SIGINT, SIG_IGN);
    std::signal(SIGTERM, SIG_IGN);
    engine->follow();
    return;
  }
  if (const std::string summary = engine->load_summary(); !summary.empty()) fmt::print(stderr, "[shardlm] {}\n", summary);

  Scheduler scheduler(*engine, tokenizer, SchedulerOptions{options.max_num_batched_tokens});
  serve::ServerOptions server_options;
  server_options.host = options.host;
  server_options.port = options.port;
  server_options.served_model_name =
      options.served_model_name.empty() ? std::filesystem::absolute(dir).lexically_normal().filename().string()
                                        : options.served_model_name;
  if (server_options.served_model_name.empty()) server_options.served_model_name = dir.string();
  server_options.api_key = options.api_key;
  server_options.max_model_len = max_model_len;
  server_options.eos_token_ids = eos_token_ids(config, generation, tokenizer);
  server_options.sampling_defaults = announce_sampling_defaults(options.generation_config, sampling);
  server_options.chat_template = chat_template ? &*chat_template : nullptr;
  server_options.tool_call_format = tool_format;
  server_options.reasoning_format = reasoning_format;
  serve::EngineLoop loop(scheduler);
  serve::HttpServer server(server_options, loop, tokenizer);
  const int port = server.listen();
  fmt::print("[shardlm] chat template: {}\n", chat_template ? chat_template->origin() : "none (chat completions answer 400)");
  const KvBlockPool& blocks = engine->kv_blocks();
  fmt::print("[shardlm] KV cache: {} blocks of {} tokens ({} tokens), prefix caching {}\n", blocks.num_blocks(),
             blocks.block_size(), int64_t(blocks.num_blocks()) * blocks.block_size(),
             blocks.prefix_caching() ? "on" : "off");
  fmt::print("[shardlm] serving {} at http://{}:{} (max {} sequences of {} tokens)\n",
             server_options.served_model_name, options.host, port, options.max_num_seqs, max_model_len);
  std::fflush(stdout);
  server.run();
  fmt::print("[shardlm] stopped\n");
}

}  // namespace

void add_serve_command(CLI::App& app) {
  auto options = std::make_shared<ServeOptions>();
  CLI::App* command = app.add_subcommand("serve", "Serve the model over an OpenAI-compatible HTTP API");
  add_model_options(*command, options->model);
  add_device_option(*command, options->device);
  command->add_option("--tp,--tensor-parallel-size", options->tp, "Tensor-parallel ranks, one thread each")
      ->check(integer_in(1, INT32_MAX))
      ->capture_default_str();
  add_tp_plan_options(*command, options->tp_plan, options->expert_parallel);
  add_device_map_options(*command, options->device_map);
  add_cuda_devices_option(*command, options->device_map);
  command->add_option("--host", options->host, "Address to listen on")->capture_default_str();
  command->add_option("--port", options->port, "Port to listen on (0: any free port)")
      ->check(integer_in(0, 65535))
      ->capture_default_str();
  command->add_option("--served-model-name", options->served_model_name,
                      "The model name requests must give (default: the model directory's name)");
  command->add_option("--max-num-seqs", options->max_num_seqs, "Sequences running at once (KV-cache slots)")
      ->check(integer_in(1, 65536))
      ->capture_default_str();
  command->add_option("--max-num-batched-tokens", options->max_num_batched_tokens,
                      "Tokens one step takes: every running sequence's next token, then prompt chunks")
      ->check(integer_in(1, INT32_MAX))
      ->capture_default_str();
  command->add_option("--max-model-len", options->max_model_len,
                      "Tokens a sequence may hold, prompt and completion (default: the model's context, at most 4096)")
      ->check(integer_in(1, INT32_MAX));
  command->add_option("--block-size", options->block_size, "Tokens per KV-cache block (a power of two)")
      ->check(integer_in(1, 1 << 16))
      ->capture_default_str();
  command->add_option("--kv-cache-memory", options->kv_cache_memory,
                      "Memory for keys and values per rank, e.g. 20GiB (default: every sequence at --max-model-len)");
  command
      ->add_option_function<double>(
          "--gpu-memory-utilization",
          [options](double share) {
            options->gpu_memory_utilization = share;
            options->gpu_memory_utilization_given = true;
          },
          "Share of the GPU's memory to use, the KV cache taking what the weights leave (one GPU)")
      ->check(CLI::Range(0.0, 1.0));
  command->add_flag("--enable-prefix-caching,!--no-enable-prefix-caching", options->enable_prefix_caching,
                    "Reuse the KV blocks of earlier prompts' shared prefixes")
      ->capture_default_str();
  command->add_option("--api-key", options->api_key, "Require Authorization: Bearer KEY on /v1 routes");
  command->add_option("--chat-template", options->chat_template,
                      "A Jinja chat template FILE (or the template text) instead of the model's own");
  CLI::Option* auto_tool_choice =
      command->add_flag("--enable-auto-tool-choice", options->auto_tool_choice,
                        "Chat replies to requests with tools return the calls the model writes as tool_calls");
  CLI::Option* tool_call_parser = command->add_option(
      "--tool-call-parser", options->tool_call_parser,
      "How the model writes tool calls: hermes (Qwen2.5, Qwen3, Hermes), llama3_json (Llama 3.1 to 3.3) or "
      "mistral (Mistral, Mixtral)");
  auto_tool_choice->needs(tool_call_parser);
  tool_call_parser->needs(auto_tool_choice);
  command->add_option("--reasoning-parser", options->reasoning_parser,
                      "Return a reasoning model's thinking as the reply's `reasoning`: qwen3 (Qwen3) or deepseek_r1 "
                      "(DeepSeek-R1, QwQ)");
  command->add_option("--generation-config", options->generation_config,
                      "Sampling defaults for fields a request leaves out: auto (the model's generation_config.json), "
                      "vllm (OpenAI's: temperature 1) or a DIR holding a generation_config.json")
      ->capture_default_str();
  command->callback([options] { run_serve(*options); });
}

}  // namespace shardlm::cli
