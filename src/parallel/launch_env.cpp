// Launcher detection. Variable names and defaults: torchrun's LocalElasticAgent._start_workers and
// run.py (MASTER_PORT 29500, OMP_NUM_THREADS=1 for several local workers); Open MPI's
// OMPI_COMM_WORLD_{RANK,SIZE,LOCAL_RANK,LOCAL_SIZE}; Slurm's srun output environment. Slurm is
// only trusted inside a job step (SLURM_STEP_NUM_TASKS, set by srun): a batch script also sees
// SLURM_PROCID=0 and the allocation's SLURM_NTASKS, but it is one process, not rank 0 of many.
#include "parallel/launch_env.h"

#include <charconv>

#include <fmt/format.h>

#include "core/error.h"

extern char** environ;

namespace shardlm {
namespace {

class EnvReader {
 public:
  explicit EnvReader(const EnvMap& env) : env_(env) {}

  // Empty values count as unset: job scripts often export VAR= to clear a variable.
  bool has(const std::string& name) const {
    const auto found = env_.find(name);
    return found != env_.end() && !found->second.empty();
  }

  std::string text(const std::string& name) const { return has(name) ? env_.at(name) : std::string(); }

  std::optional<int> integer(const std::string& name) const {
    if (!has(name)) return std::nullopt;
    const std::string& value = env_.at(name);
    int parsed = 0;
    const auto [end, error] = std::from_chars(value.data(), value.data() + value.size(), parsed);
    if (error != std::errc() || end != value.data() + value.size() || parsed < 0) {
      fail("launch environment: {}={} is not a non-negative integer", name, value);
    }
    return parsed;
  }

  // Two variables that only make sense together: both or neither.
  std::optional<std::pair<int, int>> pair(const std::string& first, const std::string& second) const {
    if (has(first) != has(second)) {
      fail("launch environment: {} is set but {} is not", has(first) ? first : second, has(first) ? second : first);
    }
    if (!has(first)) return std::nullopt;
    return std::pair(*integer(first), *integer(second));
  }

 private:
  const EnvMap& env_;
};

// The variables a launcher's values came from, for messages.
struct Names {
  std::string rank, world_size, local_rank, local_world_size;
};

void check_ranks(const LaunchEnv& launch, const Names& names) {
  if (launch.world_size < 1) fail("launch environment: {}={} must be at least 1", names.world_size, launch.world_size);
  if (launch.rank >= launch.world_size) {
    fail("launch environment: {}={} is not below {}={}", names.rank, launch.rank, names.world_size, launch.world_size);
  }
  if (launch.local_world_size < 1) {
    fail("launch environment: {}={} must be at least 1", names.local_world_size, launch.local_world_size);
  }
  if (launch.local_rank >= launch.local_world_size) {
    fail("launch environment: {}={} is not below {}={}", names.local_rank, launch.local_rank, names.local_world_size,
         launch.local_world_size);
  }
  if (launch.local_world_size > launch.world_size) {
    fail("launch environment: {}={} exceeds {}={}", names.local_world_size, launch.local_world_size, names.world_size,
         launch.world_size);
  }
}

LaunchEnv read_torchrun(const EnvReader& env) {
  LaunchEnv launch;
  launch.launcher = Launcher::TORCHRUN;
  const auto global = env.pair("RANK", "WORLD_SIZE");
  const auto local = env.pair("LOCAL_RANK", "LOCAL_WORLD_SIZE");
  // Hand-started ranks often set only one pair; either alone describes a single node.
  if (global) std::tie(launch.rank, launch.world_size) = *global;
  if (local) std::tie(launch.local_rank, launch.local_world_size) = *local;
  if (!global) std::tie(launch.rank, launch.world_size) = *local;
  if (!local) std::tie(launch.local_rank, launch.local_world_size) = *global;
  launch.node_rank = env.has("GROUP_RANK") ? env.integer("GROUP_RANK") : env.integer("NODE_RANK");
  check_ranks(launch, {"RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE"});
  return launch;
}

LaunchEnv read_open_mpi(const EnvReader& env) {
  LaunchEnv launch;
  launch.launcher = Launcher::OPEN_MPI;
  std::tie(launch.rank, launch.world_size) = *env.pair("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE");
  const auto local = env.pair("OMPI_COMM_WORLD_LOCAL_RANK", "OMPI_COMM_WORLD_LOCAL_SIZE");
  std::tie(launch.local_rank, launch.local_world_size) = local ? *local : std::pair(launch.rank, launch.world_size);
  check_ranks(launch, {"OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK",
                       "OMPI_COMM_WORLD_LOCAL_SIZE"});
  return launch;
}

// SLURM_STEP_TASKS_PER_NODE style: "2(x3),1" is 2 tasks on each of 3 nodes, then 1.
std::optional<int> tasks_on_node(const std::string& name, const std::string& list, int node) {
  int index = 0;
  size_t start = 0;
  while (start < list.size()) {
    size_t end = list.find(',', start);
    if (end == std::string::npos) end = list.size();
    const std::string item = list.substr(start, end - start);
    int tasks = 0, repeat = 1;
    const auto [after_tasks, error] = std::from_chars(item.data(), item.data() + item.size(), tasks);
    bool ok = error == std::errc() && tasks > 0;
    if (ok && after_tasks != item.data() + item.size()) {
      ok = item.size() > size_t(after_tasks - item.data()) + 3 && std::string_view(after_tasks, 2) == "(x" && item.back() == ')';
      if (ok) {
        const auto [after_repeat, repeat_error] = std::from_chars(after_tasks + 2, item.data() + item.size() - 1, repeat);
        ok = repeat_error == std::errc() && after_repeat == item.data() + item.size() - 1 && repeat > 0;
      }
    }
    if (!ok) fail("launch environment: {}={} is not a Slurm task count list", name, list);
    if (node < index + repeat) return tasks;
    index += repeat;
    start = end + 1;
  }
  return std::nullopt;
}

LaunchEnv read_slurm(const EnvReader& env) {
  LaunchEnv launch;
  launch.launcher = Launcher::SLURM;
  launch.rank = *env.integer("SLURM_PROCID");
  launch.world_size = *env.integer("SLURM_STEP_NUM_TASKS");
  launch.node_rank = env.integer("SLURM_NODEID");
  launch.local_rank = env.integer("SLURM_LOCALID").value_or(launch.rank);
  const int node = launch.node_rank.value_or(0);
  std::optional<int> local_world;
  for (const char* name : {"SLURM_STEP_TASKS_PER_NODE", "SLURM_TASKS_PER_NODE"}) {
    if (!local_world && env.has(name)) local_world = tasks_on_node(name, env.text(name), node);
  }
  if (!local_world) local_world = env.integer("SLURM_NTASKS_PER_NODE");
  const std::optional<int> nodes = env.has("SLURM_STEP_NUM_NODES") ? env.integer("SLURM_STEP_NUM_NODES") : env.integer("SLURM_NNODES");
  if (!local_world && nodes == 1) local_world = launch.world_size;
  if (!local_world) {
    fail("launch environment: cannot tell how many Slurm tasks run on this node: none of SLURM_STEP_TASKS_PER_NODE, "
         "SLURM_TASKS_PER_NODE or SLURM_NTASKS_PER_NODE is set");
  }
  launch.local_world_size = *local_world;
  check_ranks(launch, {"SLURM_PROCID", "SLURM_STEP_NUM_TASKS", "SLURM_LOCALID", "tasks on this node"});
  return launch;
}

void read_master(const EnvReader& env, LaunchEnv& launch) {
  if (env.has("MASTER_PORT")) {
    launch.master_port = *env.integer("MASTER_PORT");
    if (launch.master_port < 1 || launch.master_port > 65535) {
      fail("launch environment: MASTER_PORT={} is not a TCP port", launch.master_port);
    }
  }
  if (env.has("MASTER_ADDR")) {
    launch.master_addr = env.text("MASTER_ADDR");
    return;
  }
  if (launch.local_world_size == launch.world_size) {
    launch.master_addr = "127.0.0.1";  // every rank is on this node
    return;
  }
  if (launch.launcher == Launcher::SLURM) {
    for (const char* name : {"SLURM_STEP_NODELIST", "SLURM_JOB_NODELIST", "SLURM_NODELIST"}) {
      if (env.has(name)) {
        launch.master_addr = first_slurm_host(env.text(name));
        return;
      }
    }
  }
  fail("launch environment: MASTER_ADDR is not set and the {} ranks span several nodes ({} on this one); set "
       "MASTER_ADDR to the host of rank 0",
       launch.world_size, launch.local_world_size);
}

}  // namespace

std::string_view launcher_name(Launcher launcher) {
  switch (launcher) {
    case Launcher::NONE: return "none";
    case Launcher::TORCHRUN: return "torchrun";
    case Launcher::OPEN_MPI: return "Open MPI";
    case Launcher::SLURM: return "Slurm";
  }
  return "?";
}

EnvMap current_environment() {
  EnvMap env;
  for (char** entry = environ; *entry != nullptr; ++entry) {
    const std::string_view text(*entry);
    const size_t equals = text.find('=');
    if (equals != std::string_view::npos) env.emplace(text.substr(0, equals), text.substr(equals + 1));
  }
  return env;
}

LaunchEnv detect_launch_env(const EnvMap& env_map) {
  const EnvReader env(env_map);
  LaunchEnv launch;
  if (env.has("RANK") || env.has("WORLD_SIZE") || env.has("LOCAL_RANK") || env.has("LOCAL_WORLD_SIZE")) {
    launch = read_torchrun(env);
  } else if (env.has("OMPI_COMM_WORLD_RANK") || env.has("OMPI_COMM_WORLD_SIZE")) {
    launch = read_open_mpi(env);
  } else if (env.has("SLURM_PROCID") && env.has("SLURM_STEP_NUM_TASKS")) {
    launch = read_slurm(env);
  } else {
    return launch;
  }
  read_master(env, launch);
  return launch;
}

std::string first_slurm_host(const std::string& node_list) {
  const auto unreadable = [&] {
    fail("launch environment: cannot read the first host of the Slurm node list \"{}\"; set MASTER_ADDR", node_list);
  };
  // The first entry ends at the first comma outside brackets.
  size_t end = 0;
  int depth = 0;
  for (; end < node_list.size(); ++end) {
    if (node_list[end] == '[') ++depth;
    if (node_list[end] == ']' && --depth < 0) unreadable();
    if (node_list[end] == ',' && depth == 0) break;
  }
  const std::string entry = node_list.substr(0, end);
  if (entry.empty() || depth != 0) unreadable();
  const size_t open = entry.find('[');
  if (open == std::string::npos) return entry;
  const size_t close = entry.find(']', open);
  const std::string suffix = entry.substr(close + 1);
  if (open == 0 || suffix.find('[') != std::string::npos) unreadable();  // several ranges: not "simple"
  const std::string ranges = entry.substr(open + 1, close - open - 1);
  const std::string first = ranges.substr(0, ranges.find_first_of(",-"));
  if (first.empty() || first.find_first_not_of("0123456789") != std::string::npos) unreadable();
  return entry.substr(0, open) + first + suffix;
}

std::vector<EnvMap> torchrun_child_environments(const EnvMap& parent, const LaunchSpec& spec) {
  if (spec.nproc_per_node < 1) fail("launch: --nproc-per-node {} must be at least 1", spec.nproc_per_node);
  if (spec.nnodes < 1) fail("launch: --nnodes {} must be at least 1", spec.nnodes);
  if (spec.node_rank < 0 || spec.node_rank >= spec.nnodes) {
    fail("launch: --node-rank {} is outside {} node(s)", spec.node_rank, spec.nnodes);
  }
  if (spec.master_port < 1 || spec.master_port > 65535) fail("launch: master port {} is not a TCP port", spec.master_port);
  const int world_size = spec.nnodes * spec.nproc_per_node;
  std::vector<EnvMap> children;
  for (int local_rank = 0; local_rank < spec.nproc_per_node; ++local_rank) {
    const int rank = spec.node_rank * spec.nproc_per_node + local_rank;
    const std::vector<std::pair<std::string, std::string>> torchrun_variables = {
        {"RANK", std::to_string(rank)},
        {"WORLD_SIZE", std::to_string(world_size)},
        {"LOCAL_RANK", std::to_string(local_rank)},
        {"LOCAL_WORLD_SIZE", std::to_string(spec.nproc_per_node)},
        {"GROUP_RANK", std::to_string(spec.node_rank)},
        {"GROUP_WORLD_SIZE", std::to_string(spec.nnodes)},
        {"ROLE_RANK", std::to_string(rank)},
        {"ROLE_WORLD_SIZE", std::to_string(world_size)},
        {"ROLE_NAME", "default"},
        {"MASTER_ADDR", spec.master_addr},
        {"MASTER_PORT", std::to_string(spec.master_port)},
        {"TORCHELASTIC_RESTART_COUNT", "0"},
        {"TORCHELASTIC_MAX_RESTARTS", "0"},
        {"TORCHELASTIC_RUN_ID", "none"},
        {"TORCHELASTIC_USE_AGENT_STORE", "False"},
    };
    EnvMap env = parent;
    for (const auto& [name, value] : torchrun_variables) env.insert_or_assign(name, value);
    // Several CPU-hungry ranks per node would oversubscribe the cores; torchrun makes the same call.
    if (spec.nproc_per_node > 1 && !parent.contains("OMP_NUM_THREADS")) env.emplace("OMP_NUM_THREADS", std::string("1"));
    children.push_back(std::move(env));
  }
  return children;
}

}  // namespace shardlm
