// `shardlm launch --nproc-per-node N -- PROGRAM ARGS...`: starts N copies of a program with the
// environment torchrun gives its workers (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE,
// MASTER_ADDR, MASTER_PORT), so `shardlm generate` runs as N ranks that find each other over TCP.
// When one worker fails, the others are stopped and launch fails (exit code 1, like every other
// error) with a message saying how the worker ended, so a dead rank never leaves the rest hanging.
// The worker's own status is not passed on: 137 from a killed worker would read as if launch itself
// had been killed. SIGINT and SIGTERM are passed on to the workers, as torchrun does, so that
// stopping launch stops a launched server cleanly (its rank 0 ends the others' steps).
#include <fmt/core.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <thread>

#include "commands.h"
#include "core/error.h"
#include "option_checks.h"
#include "parallel/launch_env.h"

namespace shardlm::cli {
namespace {

struct LaunchOptions {
  int nproc_per_node = 1;
  std::string master_addr = "127.0.0.1";
  int master_port = kDefaultMasterPort;
  std::vector<std::string> command;
};

// The workers, for the signal handler to pass SIGINT and SIGTERM on to (kill() is
// async-signal-safe). Entries change only while those signals are blocked, and a reaped worker's
// entry becomes 0 and is skipped, so a pid the system hands out again is never signalled.
constexpr int kMaxForwardedWorkers = 4096;
std::array<volatile sig_atomic_t, kMaxForwardedWorkers> g_workers{};
volatile sig_atomic_t g_n_workers = 0;

void forward_to_workers(int signal) {
  const int saved_errno = errno;
  for (int i = 0; i < g_n_workers; ++i)
    if (g_workers[size_t(i)] > 0) kill(pid_t(g_workers[size_t(i)]), signal);
  errno = saved_errno;
}

// SIGINT and SIGTERM are held back while it lives (the previous mask comes back after).
class StopSignalsBlocked {
 public:
  StopSignalsBlocked() {
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    sigprocmask(SIG_BLOCK, &stop, &previous_);
  }
  ~StopSignalsBlocked() { sigprocmask(SIG_SETMASK, &previous_, nullptr); }
  StopSignalsBlocked(const StopSignalsBlocked&) = delete;
  StopSignalsBlocked& operator=(const StopSignalsBlocked&) = delete;
  const sigset_t& previous() const { return previous_; }

 private:
  sigset_t previous_;
};

void forget_worker(pid_t pid) {
  const StopSignalsBlocked blocked;
  for (int i = 0; i < g_n_workers; ++i)
    if (g_workers[size_t(i)] == pid) g_workers[size_t(i)] = 0;
}

// `signal_mask`: the mask the program starts with (launch holds the stop signals back meanwhile).
pid_t spawn(const std::vector<std::string>& command, const EnvMap& environment, const sigset_t& signal_mask) {
  const pid_t pid = fork();
  if (pid < 0) fail("launch: fork failed");
  if (pid > 0) return pid;
  // Child: replace the environment and signal mask, then the program. Only async-signal-safe-ish
  // work from here.
  clearenv();
  for (const auto& [name, value] : environment) setenv(name.c_str(), value.c_str(), 1);
  sigprocmask(SIG_SETMASK, &signal_mask, nullptr);
  std::vector<char*> argv;
  for (const std::string& arg : command) argv.push_back(const_cast<char*>(arg.c_str()));
  argv.push_back(nullptr);
  execvp(argv[0], argv.data());
  fmt::print(stderr, "error: launch: cannot run {}\n", command[0]);
  _exit(127);
}

// How a waited-for child ended, in words.
std::string describe_status(int status) {
  if (WIFEXITED(status)) return fmt::format("exited with status {}", WEXITSTATUS(status));
  return fmt::format("was killed by signal {} ({})", WTERMSIG(status), strsignal(WTERMSIG(status)));
}

void stop_all(std::vector<pid_t>& running) {
  for (pid_t pid : running) kill(pid, SIGTERM);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (!running.empty() && std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    const pid_t done = waitpid(-1, &status, WNOHANG);
    if (done > 0) {
      forget_worker(done);
      std::erase(running, done);
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  for (pid_t pid : running) kill(pid, SIGKILL);
  for (pid_t pid : running) {
    waitpid(pid, nullptr, 0);
    forget_worker(pid);
  }
  running.clear();
}

void run_launch(const LaunchOptions& options) {
  if (options.command.empty()) fail("launch: no program given (usage: shardlm launch --nproc-per-node N -- PROGRAM ARGS...)");
  LaunchSpec spec;
  spec.nproc_per_node = options.nproc_per_node;
  spec.master_addr = options.master_addr;
  spec.master_port = options.master_port;
  std::vector<pid_t> running;
  {
    // A stop request waits until every worker exists and can be told (delivered as this ends).
    const StopSignalsBlocked blocked;
    for (const EnvMap& environment : torchrun_child_environments(current_environment(), spec))
      running.push_back(spawn(options.command, environment, blocked.previous()));
    for (size_t i = 0; i < running.size(); ++i) g_workers[i] = running[i];
    g_n_workers = int(running.size());
    struct sigaction action {};
    action.sa_handler = forward_to_workers;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_RESTART;  // waitpid below goes on waiting for the workers to stop
    sigaction(SIGINT, &action, nullptr);
    sigaction(SIGTERM, &action, nullptr);
  }
  while (!running.empty()) {
    int status = 0;
    const pid_t done = waitpid(-1, &status, 0);
    if (done < 0) break;
    forget_worker(done);
    std::erase(running, done);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      const size_t n_others = running.size();
      stop_all(running);
      fail("launch: a worker (pid {}) {}; stopped the other {}", done, describe_status(status), n_others);
    }
  }
}

}  // namespace

void add_launch_command(CLI::App& app) {
  auto options = std::make_shared<LaunchOptions>();
  CLI::App* command =
      app.add_subcommand("launch", "Start N ranks of a program with torchrun's environment (shardlm launch -- ...)");
  command->add_option("--nproc-per-node", options->nproc_per_node, "Processes (ranks) to start")
      ->check(integer_in(1, kMaxForwardedWorkers))
      ->capture_default_str();
  command->add_option("--master-addr", options->master_addr, "Address of rank 0")->capture_default_str();
  command->add_option("--master-port", options->master_port, "Port rank 0 listens on")
      ->check(integer_in(1, 65535))
      ->capture_default_str();
  command->add_option("command", options->command, "The program and its arguments, after --")->required();
  command->callback([options] { run_launch(*options); });
}

}  // namespace shardlm::cli
