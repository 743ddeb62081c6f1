// Who started this process, and as which rank: the variables of torchrun (and `shardlm launch`,
// which sets the same ones), Open MPI's mpirun and Slurm's srun, read into one LaunchEnv. The
// environment is passed in as a map so every rule is testable; current_environment() gives the
// real one. Launchers nest (torchrun or mpirun inside a Slurm allocation), and the innermost one
// describes this process, so the more specific variables win: torchrun's, then Open MPI's, then
// Slurm's. Inconsistent values are errors naming the variables, never guesses.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace shardlm {

using EnvMap = std::map<std::string, std::string>;

enum class Launcher { NONE, TORCHRUN, OPEN_MPI, SLURM };
std::string_view launcher_name(Launcher launcher);  // "none", "torchrun", "Open MPI", "Slurm"

constexpr int kDefaultMasterPort = 29500;  // torchrun's

struct LaunchEnv {
  Launcher launcher = Launcher::NONE;  // NONE: a single process, rank 0 of 1
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;        // rank among the processes on this node: the GPU to use
  int local_world_size = 1;
  std::optional<int> node_rank;  // torchrun GROUP_RANK/NODE_RANK, Slurm SLURM_NODEID; unknown under mpirun
  std::string master_addr = "127.0.0.1";
  int master_port = kDefaultMasterPort;

  bool distributed() const { return launcher != Launcher::NONE; }
};

EnvMap current_environment();

// Throws Error for values that are not integers, ranks outside their world, a world that spans
// nodes with no MASTER_ADDR, and variables that come only half set (RANK without WORLD_SIZE).
LaunchEnv detect_launch_env(const EnvMap& env);

// The first host of a Slurm node list ("gpu[03-05,09],cpu1" -> "gpu03"); Error for a list it cannot
// read (then MASTER_ADDR must be set).
std::string first_slurm_host(const std::string& node_list);

struct LaunchSpec {
  int nproc_per_node = 1;
  int nnodes = 1;
  int node_rank = 0;
  std::string master_addr = "127.0.0.1";
  int master_port = kDefaultMasterPort;
};

// The environment of each of spec.nproc_per_node children, as torchrun's agent builds it: the
// parent's environment plus RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, GROUP_RANK,
// GROUP_WORLD_SIZE, ROLE_RANK, ROLE_WORLD_SIZE, ROLE_NAME, MASTER_ADDR, MASTER_PORT and the
// TORCHELASTIC_* bookkeeping; and, like torchrun, OMP_NUM_THREADS=1 when several processes share
// the node and the parent did not choose a value.
std::vector<EnvMap> torchrun_child_environments(const EnvMap& parent, const LaunchSpec& spec);

}  // namespace shardlm
