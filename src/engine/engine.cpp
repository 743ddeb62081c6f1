// Opening an Engine resolves everything that can fail without touching a weight first (the plan,
// the devices), then loads every rank. Ranks of one process are threads: rank 0 is the caller's,
// the others follow the steps it sends until it stops them. A rank that fails aborts the group
// (and the NCCL communicators of this process), so no rank waits forever on another.
#include "engine/engine.h"

#include <fmt/core.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <limits>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>

#include "core/error.h"
#include "engine/cpu_rank_model.h"
#include "engine/step_message.h"
#include "parallel/comm/tcp_communicator.h"
#include "parallel/comm/thread_group.h"
#include "plan/tp_plan.h"
#ifdef SHARDLM_WITH_CUDA
#include "backend/cuda/device_query.h"
#include "engine/cuda/cuda_rank_model.h"
#endif

namespace shardlm {

DeviceSpec parse_device(const std::string& text) {
  if (text == "cpu") return {};
  if (text == "cuda") return {true, 0};
  if (text.rfind("cuda:", 0) == 0) {
    int index = -1;
    const char* first = text.data() + 5;
    const char* last = text.data() + text.size();
    const auto [end, error] = std::from_chars(first, last, index);
    if (error == std::errc() && end == last && first != last && index >= 0) return {true, index};
  }
  fail("--device: expected cpu, cuda or cuda:N, got \"{}\"", text);
}

struct Engine::Ranks {
  EngineOptions options;
  ModelConfig config;
  std::shared_ptr<const Checkpoint> checkpoint;
  int64_t max_seq_len = 0;
  KvCacheShape kv_shape;
  int n_ranks = 1;
  int rank = 0;  // this process's own rank
  std::optional<TpPlan> plan;
  std::shared_ptr<ThreadGroup> threads;  // --tp N: ranks as threads of this process
  std::unique_ptr<TcpCommunicator> tcp;  // a launcher's processes
  Communicator* comm = nullptr;          // this rank's; null for one rank
  std::vector<int> gpus;                 // each rank thread's CUDA device (a launched rank: unused)
  bool gpus_shared = false;              // a GPU runs several ranks: collectives through the host
  bool peer_all_reduce = false;
#ifdef SHARDLM_WITH_CUDA
  cuda::NcclAbortList nccl_aborts;
#endif
  std::unique_ptr<RankModel> own;
  std::vector<std::thread> followers;
  std::atomic<bool> stopped = false;  // the followers were sent STOP or the group was aborted (set from any rank)
  std::mutex failure_mutex;
  std::string failure;  // why the group was aborted, first reason given (any rank's thread)

  ~Ranks() {
    if (comm && rank == 0 && !stopped) {
      try {
        send_step(*comm, StepMessage{StepKind::STOP, {}, {}, 0, {}, {}});
      } catch (const std::exception& error) {
        abort(error.what());
      }
    }
    for (std::thread& follower : followers) follower.join();
  }

  void abort(const std::string& reason) {
    {
      const std::lock_guard lock(failure_mutex);
      if (failure.empty()) failure = reason;
    }
    stopped = true;
#ifdef SHARDLM_WITH_CUDA
    nccl_aborts.abort_all();
#endif
    if (threads) threads->abort(reason);
    if (tcp) tcp->abort(reason);
  }

  std::unique_ptr<RankModel> make_model(int model_rank, Communicator* rank_comm) {
    if (!options.device.is_cuda) {
      LlamaModel model = rank_comm ? LlamaModel(config, checkpoint, TensorParallelRank{&*plan, model_rank, rank_comm})
                                   : LlamaModel(config, checkpoint);
      if (options.device_map) {
        // cpu units are copied into RAM; disk units are read in place from the mapped checkpoint.
        std::vector<int> resident_layers;
        const std::vector<DeviceId>& layers = options.device_map->placement.layers;
        for (size_t il = 0; il < layers.size(); ++il) {
          if (layers[il].is_gpu())
            fail("--device-map puts model.layers.{} on {}; run with --device cuda", il, layers[il].name());
          if (layers[il].kind == DeviceKind::CPU) resident_layers.push_back(int(il));
        }
        model.keep_layers_in_memory(resident_layers);
      }
      return std::make_unique<CpuRankModel>(std::move(model), kv_shape);
    }
#ifdef SHARDLM_WITH_CUDA
    cuda::CudaRankSetup setup;
    setup.options.device = options.launch.distributed() ? options.device.index + options.launch.local_rank
                                                        : gpus[size_t(model_rank)];
    setup.options.max_sequences = options.max_sequences;
    setup.options.max_seq_len = max_seq_len;
    setup.options.kv_num_blocks = kv_shape.num_blocks;
    setup.options.kv_block_size = kv_shape.block_size;
    setup.options.kv_memory_fraction = options.gpu_memory_utilization;
    // A decode step (one row per sequence) always fits one pass, so it runs as one CUDA graph.
    setup.options.max_rows = std::max(options.max_rows_per_pass, options.max_sequences);
    if (options.device_map) setup.options.placement = options.device_map->placement;
    setup.options.offload_exec = options.offload_exec;
    if (options.device_map) setup.options.cuda_devices = options.cuda_devices;
    setup.random_seed = options.random_seed;
    if (rank_comm) {
      setup.plan = &*plan;
      setup.host = rank_comm;
      setup.peer_all_reduce = peer_all_reduce;
      setup.gpus_shared = gpus_shared;
      setup.abort_list = &nccl_aborts;
    }
    return std::make_unique<cuda::CudaRankModel>(config, checkpoint, setup);
#else
    (void)model_rank;
    fail("--device cuda:{}: this shardlm was built without the CUDA backend (configure with -DSHARDLM_CUDA=ON)",
         options.device.index);
#endif
  }

  void follow_steps(RankModel& model, Communicator& rank_comm) {
    for (;;) {
      const StepMessage message = receive_step(rank_comm);
      switch (message.kind) {
        case StepKind::SAMPLE:
          model.update_kv_blocks(message.kv_updates);
          model.forward_sample(message.rows, message.sampling, message.penalties);
          break;
        case StepKind::LOGITS:
          model.update_kv_blocks(message.kv_updates);
          model.forward_logits(message.rows);
          break;
        case StepKind::RESET_SLOT: model.reset_slot(message.slot); break;
        case StepKind::KEEP_ALIVE: break;
        case StepKind::STOP: return;
      }
    }
  }

  // A follower thread: loads its rank, waits until every rank has, then runs the leader's steps.
  void run_follower(int follower_rank) {
    Communicator& rank_comm = threads->communicator(follower_rank);
    try {
      {
        const std::unique_ptr<RankModel> model = make_model(follower_rank, &rank_comm);
        rank_comm.barrier();
        follow_steps(*model, rank_comm);
      }
      threads->leave(follower_rank);
    } catch (const std::exception& error) {
      abort(fmt::format("rank {} failed: {}", follower_rank, error.what()));
    }
  }
};

namespace {

// The paged cache the options ask for: kv_cache_tokens (or kv_cache_bytes' worth) in whole blocks,
// or every sequence whole. Under gpu_memory_utilization the GPU rank sizes it once its weights are
// in place.
KvCacheShape kv_cache_shape(const EngineOptions& options, const ModelConfig& config, int64_t max_seq_len,
                            int n_ranks) {
  KvCacheShape shape = KvCacheShape::whole_sequences(options.max_sequences, max_seq_len, options.kv_block_size);
  check_kv_cache_shape(shape);
  if (options.kv_cache_tokens < 0) fail("the KV cache size must be positive, got {} tokens", options.kv_cache_tokens);
  if (options.kv_cache_bytes < 0) fail("--kv-cache-memory must be positive, got {} bytes", options.kv_cache_bytes);
  if (int(options.kv_cache_tokens > 0) + int(options.kv_cache_bytes > 0) + int(options.gpu_memory_utilization > 0) > 1)
    fail("--kv-cache-memory and --gpu-memory-utilization both size the KV cache: give one");
  if (options.gpu_memory_utilization > 0 &&
      (!options.device.is_cuda || n_ranks > 1 || options.device_map || options.gpu_memory_utilization > 1))
    fail("--gpu-memory-utilization (a share in (0, 1], got {}) sizes the KV cache of one GPU: with --tp, a "
         "device map or the CPU give --kv-cache-memory",
         options.gpu_memory_utilization);
  int64_t tokens = options.kv_cache_tokens;
  if (options.kv_cache_bytes > 0) {
    // Each rank holds its share of the KV heads (all of them when they do not split evenly).
    const int64_t heads = config.num_key_value_heads % n_ranks == 0 ? config.num_key_value_heads / n_ranks
                                                                     : config.num_key_value_heads;
    const int64_t element_bytes = options.device.is_cuda ? 2 : 4;
    const int64_t bytes_per_token = int64_t(config.num_hidden_layers) * 2 * heads * config.head_dim * element_bytes;
    tokens = options.kv_cache_bytes / bytes_per_token;
  }
  if (tokens > 0 || options.kv_cache_bytes > 0) {
    const int64_t blocks = (tokens + shape.block_size - 1) / shape.block_size;
    if (blocks < shape.blocks_per_sequence())
      fail("the KV cache holds {} tokens, fewer than one sequence of --max-model-len {} needs: raise "
           "--kv-cache-memory or lower --max-model-len",
           blocks * shape.block_size, max_seq_len);
    if (blocks > std::numeric_limits<int32_t>::max()) fail("the KV cache's {} blocks are too many", blocks);
    shape.num_blocks = int(blocks);
  }
  return shape;
}

// The CUDA device of each rank that runs as a thread here: cuda:N + rank, or --cuda-devices, one
// entry per rank. Entries may repeat: ranks sharing a GPU (tests and the serving smoke test on a
// machine with one) then all-reduce through host memory, since NCCL refuses two ranks on a device.
std::vector<int> rank_gpus(const EngineOptions& options, int n_ranks) {
  if (!options.cuda_devices.empty() && !options.device.is_cuda)
    fail("--cuda-devices says which GPU each rank or map device runs on: it needs --device cuda");
  if (options.cuda_devices.empty() || options.device_map) {
    std::vector<int> gpus(size_t(options.launch.distributed() ? 1 : n_ranks));
    for (size_t rank = 0; rank < gpus.size(); ++rank) gpus[rank] = options.device.index + int(rank);
    return gpus;
  }
  if (options.launch.distributed())
    fail("--cuda-devices: a launched rank runs on cuda:N + its local rank; choose GPUs with CUDA_VISIBLE_DEVICES");
  if (int(options.cuda_devices.size()) != n_ranks)
    fail("--cuda-devices has {} entries for {} tensor-parallel ranks (--tp {}): give one GPU per rank, or "
         "one per cuda:N of a --device-map",
         options.cuda_devices.size(), n_ranks, n_ranks);
  return options.cuda_devices;
}

void check_devices(const EngineOptions& options, const std::vector<int>& gpus) {
  if (!options.device.is_cuda || options.launch.distributed()) return;
#ifdef SHARDLM_WITH_CUDA
  int n_devices = 0;
  if (cudaGetDeviceCount(&n_devices) != cudaSuccess) n_devices = 0;
  // Every rank's GPU is checked first, since a rank that cannot start would leave the others
  // waiting in ncclCommInitRank.
  const int n_ranks = int(gpus.size()), first = options.device.index;
  if (n_ranks == 1) {
    if (!options.device_map) cuda::require_cuda_device(gpus[0]);
    return;
  }
  for (int rank = 0; rank < n_ranks; ++rank) {
    if (gpus[size_t(rank)] < n_devices) continue;
    if (!options.cuda_devices.empty())
      fail("--cuda-devices: rank {} is to run on CUDA device {}, but {} are visible", rank, gpus[size_t(rank)],
           n_devices);
    fail("--tp {} from cuda:{} needs cuda:{}..cuda:{}, but {} CUDA devices are visible", n_ranks, first, first,
         first + n_ranks - 1, n_devices);
  }
#else
  (void)gpus;
#endif
}

}  // namespace

std::unique_ptr<Engine> Engine::open(const EngineOptions& options) {
  auto ranks = std::make_unique<Ranks>();
  Ranks& r = *ranks;
  r.options = options;
  if (options.max_sequences < 1) fail("--batch must be >= 1, got {}", options.max_sequences);
  if (options.tp < 1) fail("--tp must be >= 1, got {}", options.tp);
  if (options.launch.distributed() && options.tp != 1 && options.tp != options.launch.world_size)
    fail("--tp {}: the launcher ({}) started {} ranks", options.tp, launcher_name(options.launch.launcher),
         options.launch.world_size);
  r.n_ranks = options.launch.distributed() ? options.launch.world_size : options.tp;
  r.rank = options.launch.distributed() ? options.launch.rank : 0;
  if (options.device_map && r.n_ranks > 1)
    fail("--device-map with tensor parallelism (--tp or a launcher) is not supported: use one or the other");
  if (options.device.is_cuda || !options.cuda_devices.empty()) {
    r.gpus = rank_gpus(options, r.n_ranks);
    r.gpus_shared = std::set<int>(r.gpus.begin(), r.gpus.end()).size() < r.gpus.size();
  }
  check_devices(options, r.gpus);

  // A launched rank joins its group first, so that an error on it reaches the others.
  if (options.launch.distributed()) {
    const LaunchEnv& env = options.launch;
    r.tcp = TcpCommunicator::connect(
        {env.rank, env.world_size, env.master_addr, env.master_port, CommOptions{options.comm_timeout}});
    r.comm = r.tcp.get();
  }
  if (options.random_weights && (!options.device.is_cuda || r.n_ranks > 1 || options.device_map))
    fail("random weights run on one GPU, the model whole (--device cuda:N, no --tp, no --device-map)");
  try {
    if (options.random_weights) {
      r.config = *options.random_weights;
    } else {
      r.config = ModelConfig::from_dir(options.model_dir);
      r.checkpoint = std::make_shared<const Checkpoint>(Checkpoint::open(options.model_dir));
    }
    r.max_seq_len = options.max_seq_len > 0 ? options.max_seq_len
                                            : std::min<int64_t>(r.config.max_position_embeddings, 4096);
    if (r.max_seq_len > r.config.max_position_embeddings)
      fail("{} tokens per sequence exceed the model's max_position_embeddings {}", r.max_seq_len,
           r.config.max_position_embeddings);
    r.kv_shape = kv_cache_shape(options, r.config, r.max_seq_len, r.n_ranks);
    if (r.n_ranks == 1 && options.expert_parallel)
      fail("--enable-expert-parallel splits the experts over tensor-parallel ranks: it needs --tp N (N >= 2) or a "
           "launcher");
    if (r.n_ranks > 1)
      r.plan = resolve_tp_plan(r.config, weight_specs(*r.checkpoint),
                               TpPlanSource::from_argument(options.tp_plan, options.expert_parallel), r.n_ranks);
  } catch (const std::exception& error) {
    if (r.tcp) r.abort(fmt::format("rank {}: {}", r.rank, error.what()));
    throw;
  }

  if (r.tcp) {
    // Processes cannot share the peer all-reduce's pointers: NCCL does every collective.
    try {
      r.own = r.make_model(r.rank, r.comm);
      r.comm->barrier();  // every rank has loaded before any collective of a step is issued
    } catch (const std::exception& error) {
      r.abort(fmt::format("rank {}: {}", r.rank, error.what()));
      throw;
    }
  } else if (r.n_ranks > 1) {
#ifdef SHARDLM_WITH_CUDA
    // Decode's small all-reduces take the one-shot peer path where every GPU reaches every other.
    if (options.device.is_cuda && !r.gpus_shared) r.peer_all_reduce = cuda::peer_access_everywhere(r.gpus);
#endif
    r.threads = ThreadGroup::create(r.n_ranks, CommOptions{options.comm_timeout});
    r.comm = &r.threads->communicator(0);
    for (int follower = 1; follower < r.n_ranks; ++follower)
      r.followers.emplace_back([&r, follower] { r.run_follower(follower); });
    try {
      r.own = r.make_model(0, r.comm);
      r.comm->barrier();
    } catch (const std::exception& error) {
      r.abort(fmt::format("rank 0 failed: {}", error.what()));
      throw;
    }
  } else {
    r.own = r.make_model(0, nullptr);
  }
  return std::unique_ptr<Engine>(new Engine(std::move(ranks)));
}

Engine::Engine(std::unique_ptr<Ranks> ranks)
    : ranks_(std::move(ranks)),
      pool_(ranks_->own->kv_blocks(), ranks_->kv_shape.block_size, ranks_->options.prefix_caching) {
  leads_ = ranks_->rank == 0;
  slots_.resize(size_t(ranks_->own->max_sequences()));
}

Engine::~Engine() = default;

const ModelConfig& Engine::config() const { return ranks_->config; }
int Engine::max_sequences() const { return int(slots_.size()); }
int64_t Engine::max_seq_len() const { return ranks_->own->max_seq_len(); }
std::string Engine::load_summary() const { return ranks_->own->load_summary(); }
RankReport Engine::report() const { return ranks_->own->report(); }

template <typename Work>
auto Engine::guarded(Work&& work) {
  if (!leads_) fail("rank {} follows the leader's steps: call follow(), not step()", ranks_->rank);
  if (ranks_->stopped) {
    const std::lock_guard lock(ranks_->failure_mutex);
    fail("the engine's ranks have stopped after an earlier error: {}", ranks_->failure);
  }
  try {
    return work();
  } catch (const std::exception& error) {
    // Followers may be inside the failed step's collectives: stop them all.
    if (ranks_->comm) ranks_->abort(fmt::format("rank 0 failed: {}", error.what()));
    throw;
  }
}

void Engine::check_sampling(const SamplingParams& sampling) const {
  validate_sampling_params(sampling);
  for (const TokenBias& entry : sampling.logit_bias)
    if (entry.token >= config().vocab_size)
      fail("logit_bias: token id {} is outside the vocabulary (vocab_size {})", entry.token, config().vocab_size);
}

int Engine::add_sequence(const SamplingParams& sampling, int64_t prompt_length) {
  check_sampling(sampling);
  for (size_t slot = 0; slot < slots_.size(); ++slot) {
    if (slots_[slot].live) continue;
    slots_[slot] = Slot{};
    slots_[slot].live = true;
    slots_[slot].penalties = SequencePenalties(sampling, prompt_length);
    // The biases travel in each sampled row's penalties: the settings every row carries leave them out.
    slots_[slot].sampling = sampling;
    slots_[slot].sampling.logit_bias.clear();
    return int(slot);
  }
  fail("all {} sequence slots are in use (the engine was opened for {} sequences at once)", slots_.size(),
       slots_.size());
}

void Engine::remove_sequence(int sequence) {
  if (sequence < 0 || size_t(sequence) >= slots_.size() || !slots_[size_t(sequence)].live)
    fail("sequence {} is not running", sequence);
  // Freeing the slot is the leader's own business; after the group has failed (before, or while
  // telling it) no rank is left to tell, and a caller cleaning up must not fail on that.
  if (!ranks_->stopped) {
    try {
      guarded([&] {
        if (ranks_->comm) send_step(*ranks_->comm, StepMessage{StepKind::RESET_SLOT, {}, {}, sequence, {}, {}});
        ranks_->own->reset_slot(sequence);
      });
    } catch (const std::exception&) {
      if (!ranks_->stopped) throw;
    }
  }
  release_blocks(slots_[size_t(sequence)]);
  slots_[size_t(sequence)] = Slot{};
  std::erase_if(pending_updates_, [sequence](const KvBlockUpdate& update) { return update.slot == sequence; });
}

void Engine::release_blocks(Slot& slot) {
  // Last block first: eviction then takes a cached prefix's tail before its head.
  for (auto block = slot.blocks.rbegin(); block != slot.blocks.rend(); ++block) pool_.release(*block);
  slot.blocks.clear();
}

int64_t Engine::reuse_prefix(int sequence, std::span<const int32_t> prompt) {
  if (sequence < 0 || size_t(sequence) >= slots_.size() || !slots_[size_t(sequence)].live)
    fail("sequence {} is not running", sequence);
  Slot& slot = slots_[size_t(sequence)];
  if (slot.length != 0) fail("reuse_prefix: sequence {} already holds {} tokens", sequence, slot.length);
  // Blocks a failed step gave it hold nothing yet: they go back before the cached ones come in.
  release_blocks(slot);
  if (prompt.empty() || !pool_.prefix_caching()) return 0;
  const int block_size = pool_.block_size();
  const std::vector<int32_t> blocks = pool_.match_prefix(prompt, reusable_blocks(prompt));
  if (blocks.empty()) return 0;
  slot.blocks = blocks;
  slot.length = int64_t(blocks.size()) * block_size;
  slot.tokens.assign(prompt.begin(), prompt.begin() + slot.length);
  slot.penalties.count(slot.tokens, 0);
  for (size_t i = 0; i < blocks.size(); ++i)
    slot.last_key = KvBlockPool::block_key(slot.last_key, std::span(slot.tokens).subspan(i * size_t(block_size), size_t(block_size)));
  slot.keyed_blocks = int(blocks.size());
  pending_updates_.push_back({sequence, 0, blocks});
  return slot.length;
}

int Engine::kv_blocks_needed(int sequence, int64_t new_tokens) const {
  const Slot& slot = slots_.at(size_t(sequence));
  const int64_t blocks = (slot.length + new_tokens + pool_.block_size() - 1) / pool_.block_size();
  return int(std::max<int64_t>(0, blocks - int64_t(slot.blocks.size())));
}

int Engine::reusable_blocks(std::span<const int32_t> prompt) const {
  // The last prompt token is always computed (its logits pick the first new token), so its block is
  // never taken from the cache.
  return prompt.empty() ? 0 : int((int64_t(prompt.size()) - 1) / pool_.block_size());
}

int Engine::kv_blocks_to_start(std::span<const int32_t> prompt, int64_t chunk_tokens, bool reuses_prefix) const {
  const int64_t block_size = pool_.block_size();
  const std::vector<int32_t> cached = reuses_prefix ? pool_.cached_prefix(prompt, reusable_blocks(prompt)) : std::vector<int32_t>{};
  const int unheld = int(std::count_if(cached.begin(), cached.end(), [&](int32_t block) { return pool_.ref_count(block) == 0; }));
  const int64_t cached_tokens = int64_t(cached.size()) * block_size;
  const int64_t chunk = std::min(int64_t(prompt.size()) - cached_tokens, chunk_tokens);
  const int64_t new_blocks = (cached_tokens + chunk + block_size - 1) / block_size - int64_t(cached.size());
  return unheld + int(new_blocks);
}

int64_t Engine::kv_room(int sequence) const {
  const Slot& slot = slots_.at(size_t(sequence));
  return int64_t(slot.blocks.size()) * pool_.block_size() - slot.length;
}

int Engine::kv_blocks_needed(std::span<const SequenceChunk> chunks) const {
  int needed = 0;
  for (const SequenceChunk& chunk : chunks) needed += kv_blocks_needed(chunk.sequence, int64_t(chunk.tokens.size()));
  return needed;
}

std::vector<KvBlockUpdate> Engine::take_blocks(std::span<const SequenceChunk> chunks) {
  const int needed = kv_blocks_needed(chunks);
  if (needed > pool_.free_blocks())
    fail("KV cache: the step needs {} more blocks of {} tokens, but {} of {} are free (raise --kv-cache-memory)",
         needed, pool_.block_size(), pool_.free_blocks(), pool_.num_blocks());
  std::vector<KvBlockUpdate> updates = std::move(pending_updates_);
  pending_updates_.clear();
  for (const SequenceChunk& chunk : chunks) {
    const int more = kv_blocks_needed(chunk.sequence, int64_t(chunk.tokens.size()));
    if (more == 0) continue;
    Slot& slot = slots_[size_t(chunk.sequence)];
    KvBlockUpdate update{chunk.sequence, int(slot.blocks.size()), {}};
    for (int i = 0; i < more; ++i) update.blocks.push_back(pool_.allocate());
    slot.blocks.insert(slot.blocks.end(), update.blocks.begin(), update.blocks.end());
    updates.push_back(std::move(update));
  }
  return updates;
}

int64_t Engine::length(int sequence) const {
  if (sequence < 0 || size_t(sequence) >= slots_.size() || !slots_[size_t(sequence)].live)
    fail("sequence {} is not running", sequence);
  return slots_[size_t(sequence)].length;
}

std::vector<TokenRow> Engine::rows_of(std::span<const SequenceChunk> chunks) {
  // Everything is checked here, before any rank starts the step.
  std::vector<bool> seen(slots_.size(), false);
  std::vector<TokenRow> rows;
  for (const SequenceChunk& chunk : chunks) {
    if (chunk.sequence < 0 || size_t(chunk.sequence) >= slots_.size() || !slots_[size_t(chunk.sequence)].live)
      fail("step: sequence {} is not running", chunk.sequence);
    if (seen[size_t(chunk.sequence)]) fail("step: sequence {} appears twice in one step", chunk.sequence);
    seen[size_t(chunk.sequence)] = true;
    if (chunk.tokens.empty()) fail("step: sequence {} brings no tokens", chunk.sequence);
    const Slot& slot = slots_[size_t(chunk.sequence)];
    if (slot.length + int64_t(chunk.tokens.size()) > max_seq_len())
      fail("sequence {} would hold {} tokens, more than the {} the engine was opened for per sequence", chunk.sequence,
           slot.length + int64_t(chunk.tokens.size()), max_seq_len());
    const size_t scorable = chunk.tokens.size() - (chunk.wants_token ? 1 : 0);
    if (chunk.scored.size() > scorable)
      fail("step: sequence {} scores {} tokens with a chunk of {} rows that {}", chunk.sequence, chunk.scored.size(),
           chunk.tokens.size(), chunk.wants_token ? "also samples after its last (at most one fewer)" : "score at most one each");
    if (!chunk.scored.empty() && slot.sampling.logprobs < 0)
      fail("step: sequence {} scores prompt tokens, but its sampling settings ask for no log-probabilities (logprobs)",
           chunk.sequence);
    auto check_token = [&](int32_t token) {
      if (token < 0 || token >= config().vocab_size)
        fail("token id {} is outside the vocabulary (vocab_size {})", token, config().vocab_size);
    };
    for (size_t i = 0; i < chunk.tokens.size(); ++i) {
      check_token(chunk.tokens[i]);
      TokenRow row{chunk.sequence, slot.length + int64_t(i), chunk.tokens[i], chunk.wants_token && i + 1 == chunk.tokens.size()};
      if (i < chunk.scored.size()) {
        check_token(chunk.scored[i]);
        row.wants_logits = true;
        row.scored_token = chunk.scored[i];
      }
      rows.push_back(row);
    }
  }
  return rows;
}

void Engine::advance(std::span<const SequenceChunk> chunks) {
  const size_t block_size = size_t(pool_.block_size());
  for (const SequenceChunk& chunk : chunks) {
    Slot& slot = slots_[size_t(chunk.sequence)];
    if (chunk.wants_token) slot.penalties.prompt_ends_at(slot.length + int64_t(chunk.tokens.size()));
    slot.penalties.count(chunk.tokens, slot.length);
    slot.length += int64_t(chunk.tokens.size());
    if (!pool_.prefix_caching()) continue;
    // Blocks that this step filled become matchable by later prompts.
    slot.tokens.insert(slot.tokens.end(), chunk.tokens.begin(), chunk.tokens.end());
    while (size_t(slot.keyed_blocks + 1) * block_size <= slot.tokens.size()) {
      const std::span<const int32_t> tokens = std::span(slot.tokens).subspan(size_t(slot.keyed_blocks) * block_size, block_size);
      const uint64_t key = KvBlockPool::block_key(slot.last_key, tokens);
      pool_.register_full_block(slot.blocks[size_t(slot.keyed_blocks)], key, slot.last_key, tokens);
      slot.last_key = key;
      ++slot.keyed_blocks;
    }
  }
}

std::vector<LogitPenalties> Engine::penalties_of(std::span<const SequenceChunk> chunks) const {
  std::vector<LogitPenalties> penalties;
  if (std::none_of(chunks.begin(), chunks.end(),
                   [&](const SequenceChunk& chunk) { return slots_[size_t(chunk.sequence)].penalties.active(); }))
    return penalties;
  for (const SequenceChunk& chunk : chunks) {
    penalties.resize(penalties.size() + chunk.scored.size());
    if (!chunk.wants_token) continue;
    const Slot& slot = slots_[size_t(chunk.sequence)];
    // The sampled row's own chunk counts: its last token (the previous step's output) included.
    penalties.push_back(slot.penalties.row_after(chunk.tokens, slot.length));
  }
  return penalties;
}

std::vector<int32_t> Engine::step(std::span<const SequenceChunk> chunks) {
  const std::vector<TokenRow> rows = rows_of(chunks);
  // One entry per row that wants logits: a chunk's scored rows come first, its sampled row last.
  std::vector<SamplingParams> sampling;
  for (const SequenceChunk& chunk : chunks)
    sampling.insert(sampling.end(), chunk.scored.size() + (chunk.wants_token ? 1 : 0), slots_[size_t(chunk.sequence)].sampling);
  const std::vector<LogitPenalties> penalties = penalties_of(chunks);
  const std::vector<KvBlockUpdate> updates = take_blocks(chunks);
  const std::vector<int32_t> row_tokens = guarded([&] {
    if (ranks_->comm) send_step(*ranks_->comm, StepMessage{StepKind::SAMPLE, rows, sampling, 0, updates, penalties});
    ranks_->own->update_kv_blocks(updates);
    return ranks_->own->forward_sample(rows, sampling, penalties);
  });
  advance(chunks);
  const std::vector<std::optional<SampledLogprobs>>& row_logprobs = ranks_->own->last_logprobs();
  std::vector<int32_t> tokens;
  sampled_logprobs_.clear();
  prompt_logprobs_.assign(chunks.size(), {});
  size_t next = 0;
  for (size_t c = 0; c < chunks.size(); ++c) {
    for (size_t i = 0; i < chunks[c].scored.size(); ++i, ++next) prompt_logprobs_[c].push_back(*row_logprobs.at(next));
    if (!chunks[c].wants_token) continue;
    tokens.push_back(row_tokens.at(next));
    sampled_logprobs_.push_back(row_logprobs.at(next));
    ++next;
  }
  return tokens;
}

std::vector<float> Engine::step_logits(std::span<const SequenceChunk> chunks) {
  const std::vector<TokenRow> rows = rows_of(chunks);
  const std::vector<KvBlockUpdate> updates = take_blocks(chunks);
  std::vector<float> logits = guarded([&] {
    if (ranks_->comm) send_step(*ranks_->comm, StepMessage{StepKind::LOGITS, rows, {}, 0, updates, {}});
    ranks_->own->update_kv_blocks(updates);
    return ranks_->own->forward_logits(rows);
  });
  advance(chunks);
  return logits;
}

std::chrono::milliseconds Engine::keep_alive_interval() const { return ranks_->options.comm_timeout / 3; }

void Engine::keep_alive() {
  if (!ranks_->comm) return;
  guarded([&] { send_step(*ranks_->comm, StepMessage{StepKind::KEEP_ALIVE, {}, {}, 0, {}, {}}); });
}

void Engine::follow() {
  if (leads_) fail("the leading rank schedules the steps: call step(), not follow()");
  try {
    ranks_->follow_steps(*ranks_->own, *ranks_->comm);
    ranks_->stopped = true;
  } catch (const std::exception& error) {
    ranks_->abort(fmt::format("rank {}: {}", ranks_->rank, error.what()));
    throw;
  }
}

}  // namespace shardlm
