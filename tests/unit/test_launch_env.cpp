// Tests for launcher detection from injected environments: torchrun (and `shardlm launch`), Open
// MPI, Slurm job steps, their precedence when nested, master address defaults and Slurm node
// lists, every inconsistency error, and the children's environment that `shardlm launch` builds
// (fed back through detection, it must describe each child exactly).
#include <gtest/gtest.h>

#include <stdlib.h>

#include "core/error.h"
#include "parallel/launch_env.h"

namespace shardlm {
namespace {

std::string error_message(const EnvMap& env) {
  try {
    detect_launch_env(env);
  } catch (const Error& error) {
    return error.what();
  }
  ADD_FAILURE() << "expected shardlm::Error";
  return "";
}

TEST(LaunchEnv, NoLauncherIsOneProcess) {
  const LaunchEnv launch = detect_launch_env({{"PATH", "/usr/bin"}, {"HOME", "/root"}});
  EXPECT_FALSE(launch.distributed());
  EXPECT_EQ(launch.launcher, Launcher::NONE);
  EXPECT_EQ(launch.rank, 0);
  EXPECT_EQ(launch.world_size, 1);
}

TEST(LaunchEnv, Torchrun) {
  const LaunchEnv launch = detect_launch_env({{"RANK", "5"},
                                              {"WORLD_SIZE", "8"},
                                              {"LOCAL_RANK", "1"},
                                              {"LOCAL_WORLD_SIZE", "4"},
                                              {"GROUP_RANK", "1"},
                                              {"MASTER_ADDR", "node-a"},
                                              {"MASTER_PORT", "29601"}});
  EXPECT_EQ(launch.launcher, Launcher::TORCHRUN);
  EXPECT_TRUE(launch.distributed());
  EXPECT_EQ(launch.rank, 5);
  EXPECT_EQ(launch.world_size, 8);
  EXPECT_EQ(launch.local_rank, 1);
  EXPECT_EQ(launch.local_world_size, 4);
  EXPECT_EQ(launch.node_rank, 1);
  EXPECT_EQ(launch.master_addr, "node-a");
  EXPECT_EQ(launch.master_port, 29601);
}

TEST(LaunchEnv, TorchrunDefaultsForOneNode) {
  // Only the global pair (a hand-started rank): one node, loopback rendezvous, port 29500.
  const LaunchEnv global = detect_launch_env({{"RANK", "1"}, {"WORLD_SIZE", "2"}});
  EXPECT_EQ(global.local_rank, 1);
  EXPECT_EQ(global.local_world_size, 2);
  EXPECT_EQ(global.master_addr, "127.0.0.1");
  EXPECT_EQ(global.master_port, 29500);
  EXPECT_FALSE(global.node_rank.has_value());
  // Only the local pair, as gpt-fast reads it.
  const LaunchEnv local = detect_launch_env({{"LOCAL_RANK", "3"}, {"LOCAL_WORLD_SIZE", "4"}, {"NODE_RANK", "0"}});
  EXPECT_EQ(local.rank, 3);
  EXPECT_EQ(local.world_size, 4);
  EXPECT_EQ(local.node_rank, 0);
}

TEST(LaunchEnv, OpenMpi) {
  const LaunchEnv launch = detect_launch_env({{"OMPI_COMM_WORLD_RANK", "2"},
                                              {"OMPI_COMM_WORLD_SIZE", "4"},
                                              {"OMPI_COMM_WORLD_LOCAL_RANK", "2"},
                                              {"OMPI_COMM_WORLD_LOCAL_SIZE", "4"}});
  EXPECT_EQ(launch.launcher, Launcher::OPEN_MPI);
  EXPECT_EQ(launch.rank, 2);
  EXPECT_EQ(launch.world_size, 4);
  EXPECT_EQ(launch.local_rank, 2);
  EXPECT_EQ(launch.master_addr, "127.0.0.1");
  EXPECT_FALSE(launch.node_rank.has_value());
}

TEST(LaunchEnv, SlurmStepOnSeveralNodes) {
  const LaunchEnv launch = detect_launch_env({{"SLURM_PROCID", "5"},
                                              {"SLURM_STEP_NUM_TASKS", "7"},
                                              {"SLURM_NTASKS", "16"},  // the allocation's, not the step's
                                              {"SLURM_LOCALID", "1"},
                                              {"SLURM_NODEID", "2"},
                                              {"SLURM_STEP_TASKS_PER_NODE", "2(x3),1"},
                                              {"SLURM_STEP_NODELIST", "gpu[07-09,12]"},
                                              {"SLURM_JOB_NODELIST", "gpu[01-16]"}});
  EXPECT_EQ(launch.launcher, Launcher::SLURM);
  EXPECT_EQ(launch.rank, 5);
  EXPECT_EQ(launch.world_size, 7);
  EXPECT_EQ(launch.local_rank, 1);
  EXPECT_EQ(launch.local_world_size, 2);
  EXPECT_EQ(launch.node_rank, 2);
  EXPECT_EQ(launch.master_addr, "gpu07");
  EXPECT_EQ(launch.master_port, 29500);

  EnvMap last_node = {{"SLURM_PROCID", "6"},        {"SLURM_STEP_NUM_TASKS", "7"},       {"SLURM_LOCALID", "0"},
                      {"SLURM_NODEID", "3"},        {"SLURM_STEP_TASKS_PER_NODE", "2(x3),1"},
                      {"SLURM_JOB_NODELIST", "a1,b2"}, {"MASTER_PORT", "12345"}};
  const LaunchEnv last = detect_launch_env(last_node);
  EXPECT_EQ(last.local_world_size, 1);
  EXPECT_EQ(last.master_addr, "a1");
  EXPECT_EQ(last.master_port, 12345);
  last_node["MASTER_ADDR"] = "10.0.0.1";
  EXPECT_EQ(detect_launch_env(last_node).master_addr, "10.0.0.1");
}

TEST(LaunchEnv, SlurmBatchScriptIsNotARank) {
  // sbatch's own shell: SLURM_PROCID=0 and the allocation's task count, but no job step.
  const LaunchEnv launch = detect_launch_env({{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "8"}, {"SLURM_JOB_ID", "77"}});
  EXPECT_FALSE(launch.distributed());
}

TEST(LaunchEnv, InnermostLauncherWins) {
  // torchrun started by srun: torchrun's variables describe this worker.
  const LaunchEnv torchrun = detect_launch_env({{"RANK", "3"}, {"WORLD_SIZE", "4"}, {"LOCAL_RANK", "3"},
                                                {"LOCAL_WORLD_SIZE", "4"}, {"SLURM_PROCID", "0"},
                                                {"SLURM_STEP_NUM_TASKS", "1"}, {"SLURM_NNODES", "1"}});
  EXPECT_EQ(torchrun.launcher, Launcher::TORCHRUN);
  EXPECT_EQ(torchrun.rank, 3);
  // mpirun inside a Slurm allocation.
  const LaunchEnv mpi = detect_launch_env({{"OMPI_COMM_WORLD_RANK", "1"}, {"OMPI_COMM_WORLD_SIZE", "2"},
                                           {"SLURM_PROCID", "0"}, {"SLURM_STEP_NUM_TASKS", "1"}, {"SLURM_NNODES", "1"}});
  EXPECT_EQ(mpi.launcher, Launcher::OPEN_MPI);
  EXPECT_EQ(mpi.rank, 1);
}

TEST(LaunchEnvErrors, InconsistentValues) {
  EXPECT_EQ(error_message({{"RANK", "4"}, {"WORLD_SIZE", "4"}}), "launch environment: RANK=4 is not below WORLD_SIZE=4");
  EXPECT_EQ(error_message({{"RANK", "0"}, {"WORLD_SIZE", "0"}}), "launch environment: WORLD_SIZE=0 must be at least 1");
  EXPECT_EQ(error_message({{"RANK", "1"}, {"WORLD_SIZE", "4"}, {"LOCAL_RANK", "2"}, {"LOCAL_WORLD_SIZE", "2"}}),
            "launch environment: LOCAL_RANK=2 is not below LOCAL_WORLD_SIZE=2");
  EXPECT_EQ(error_message({{"RANK", "1"}, {"WORLD_SIZE", "2"}, {"LOCAL_RANK", "1"}, {"LOCAL_WORLD_SIZE", "4"}}),
            "launch environment: LOCAL_WORLD_SIZE=4 exceeds WORLD_SIZE=2");
  EXPECT_EQ(error_message({{"OMPI_COMM_WORLD_RANK", "3"}, {"OMPI_COMM_WORLD_SIZE", "2"}}),
            "launch environment: OMPI_COMM_WORLD_RANK=3 is not below OMPI_COMM_WORLD_SIZE=2");
  EXPECT_EQ(error_message({{"SLURM_PROCID", "2"}, {"SLURM_STEP_NUM_TASKS", "2"}, {"SLURM_NNODES", "1"}}),
            "launch environment: SLURM_PROCID=2 is not below SLURM_STEP_NUM_TASKS=2");
}

TEST(LaunchEnvErrors, HalfSetPairsAndBadNumbers) {
  EXPECT_EQ(error_message({{"RANK", "0"}}), "launch environment: RANK is set but WORLD_SIZE is not");
  EXPECT_EQ(error_message({{"WORLD_SIZE", "2"}, {"LOCAL_RANK", "0"}, {"LOCAL_WORLD_SIZE", "2"}}),
            "launch environment: WORLD_SIZE is set but RANK is not");
  EXPECT_EQ(error_message({{"RANK", "one"}, {"WORLD_SIZE", "2"}}), "launch environment: RANK=one is not a non-negative integer");
  EXPECT_EQ(error_message({{"RANK", "-1"}, {"WORLD_SIZE", "2"}}), "launch environment: RANK=-1 is not a non-negative integer");
  EXPECT_EQ(error_message({{"RANK", "1x"}, {"WORLD_SIZE", "2"}}), "launch environment: RANK=1x is not a non-negative integer");
  EXPECT_EQ(error_message({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_PORT", "70000"}}),
            "launch environment: MASTER_PORT=70000 is not a TCP port");
  EXPECT_EQ(error_message({{"SLURM_PROCID", "0"}, {"SLURM_STEP_NUM_TASKS", "2"}, {"SLURM_STEP_TASKS_PER_NODE", "2(x"}}),
            "launch environment: SLURM_STEP_TASKS_PER_NODE=2(x is not a Slurm task count list");
}

TEST(LaunchEnvErrors, SeveralNodesNeedAMasterAddress) {
  EXPECT_EQ(error_message({{"RANK", "0"}, {"WORLD_SIZE", "8"}, {"LOCAL_RANK", "0"}, {"LOCAL_WORLD_SIZE", "4"}}),
            "launch environment: MASTER_ADDR is not set and the 8 ranks span several nodes (4 on this one); set "
            "MASTER_ADDR to the host of rank 0");
  EXPECT_EQ(error_message({{"SLURM_PROCID", "0"}, {"SLURM_STEP_NUM_TASKS", "4"}, {"SLURM_NNODES", "2"}}),
            "launch environment: cannot tell how many Slurm tasks run on this node: none of SLURM_STEP_TASKS_PER_NODE, "
            "SLURM_TASKS_PER_NODE or SLURM_NTASKS_PER_NODE is set");
}

TEST(SlurmNodeList, FirstHost) {
  EXPECT_EQ(first_slurm_host("node17"), "node17");
  EXPECT_EQ(first_slurm_host("node17,node18"), "node17");
  EXPECT_EQ(first_slurm_host("gpu[003-008]"), "gpu003");
  EXPECT_EQ(first_slurm_host("gpu[3,5-6],cpu[1-2]"), "gpu3");
  EXPECT_EQ(first_slurm_host("gpu[1-2]-ib"), "gpu1-ib");
  for (const char* unreadable : {"", "[1-2]", "rack[1-2]-node[1-4]", "gpu[1-2", "gpu]1["}) {
    try {
      first_slurm_host(unreadable);
      ADD_FAILURE() << unreadable;
    } catch (const Error& error) {
      EXPECT_NE(std::string(error.what()).find("set MASTER_ADDR"), std::string::npos) << error.what();
    }
  }
}

TEST(TorchrunChildren, EveryChildDetectsItsOwnRank) {
  const EnvMap parent = {{"PATH", "/usr/bin"}, {"RANK", "9"}, {"NCCL_DEBUG", "INFO"}};
  const std::vector<EnvMap> children =
      torchrun_child_environments(parent, {4, 2, 1, "10.1.2.3", 29555});
  ASSERT_EQ(children.size(), 4u);
  for (int local = 0; local < 4; ++local) {
    const EnvMap& env = children[size_t(local)];
    EXPECT_EQ(env.at("PATH"), "/usr/bin");
    EXPECT_EQ(env.at("NCCL_DEBUG"), "INFO");  // passed through
    EXPECT_EQ(env.at("GROUP_WORLD_SIZE"), "2");
    EXPECT_EQ(env.at("ROLE_NAME"), "default");
    EXPECT_EQ(env.at("TORCHELASTIC_RUN_ID"), "none");
    EXPECT_EQ(env.at("OMP_NUM_THREADS"), "1");
    const LaunchEnv launch = detect_launch_env(env);
    EXPECT_EQ(launch.launcher, Launcher::TORCHRUN);
    EXPECT_EQ(launch.rank, 4 + local);  // the parent's RANK is overridden
    EXPECT_EQ(launch.world_size, 8);
    EXPECT_EQ(launch.local_rank, local);
    EXPECT_EQ(launch.local_world_size, 4);
    EXPECT_EQ(launch.node_rank, 1);
    EXPECT_EQ(launch.master_addr, "10.1.2.3");
    EXPECT_EQ(launch.master_port, 29555);
  }
}

TEST(TorchrunChildren, KeepsAChosenThreadCountAndChecksTheSpec) {
  const std::vector<EnvMap> children = torchrun_child_environments({{"OMP_NUM_THREADS", "3"}}, {2});
  EXPECT_EQ(children[1].at("OMP_NUM_THREADS"), "3");
  EXPECT_FALSE(torchrun_child_environments({}, {1})[0].contains("OMP_NUM_THREADS"));
  const auto error_of = [](const LaunchSpec& spec) {
    try {
      torchrun_child_environments({}, spec);
    } catch (const Error& error) {
      return std::string(error.what());
    }
    return std::string();
  };
  EXPECT_EQ(error_of({0}), "launch: --nproc-per-node 0 must be at least 1");
  EXPECT_EQ(error_of({2, 2, 2}), "launch: --node-rank 2 is outside 2 node(s)");
  EXPECT_EQ(error_of({2, 1, 0, "127.0.0.1", 0}), "launch: master port 0 is not a TCP port");
}

TEST(LaunchEnv, CurrentEnvironmentReadsTheProcessEnvironment) {
  setenv("SHARDLM_LAUNCH_ENV_TEST", "a=b", 1);
  EXPECT_EQ(current_environment().at("SHARDLM_LAUNCH_ENV_TEST"), "a=b");
}

}  // namespace
}  // namespace shardlm
