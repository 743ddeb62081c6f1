// Test support: runs the shardlm executable through the shell and returns its exit code and output.
#pragma once

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <string>
#include <vector>

namespace shardlm {

struct CommandResult {
  int exit_code;       // as a shell reports it: 128 + signal when killed
  std::string output;  // stdout, and stderr too when asked for
};

inline std::string shell_quote(const std::string& text) {
  std::string quoted = "'";
  for (char c : text) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return quoted + "'";
}

// Runs a shell command line and collects what it prints on stdout.
inline CommandResult run_shell(const std::string& command) {
  FILE* pipe = popen(command.c_str(), "r");
  std::string output;
  std::array<char, 4096> buffer;
  size_t n;
  while ((n = fread(buffer.data(), 1, buffer.size(), pipe)) > 0) output.append(buffer.data(), n);
  const int status = pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status), output};
}

inline std::string cli_command_line(const std::vector<std::string>& args) {
  std::string command = shell_quote(SHARDLM_CLI_PATH);
  for (const std::string& arg : args) command += " " + shell_quote(arg);
  return command;
}

// Runs `shardlm ARGS`.
inline CommandResult run_cli(const std::vector<std::string>& args, bool with_stderr = true) {
  return run_shell(cli_command_line(args) + (with_stderr ? " 2>&1" : " 2>/dev/null"));
}

// Runs `shardlm ARGS` for at most `seconds` (exit code 124 when coreutils' timeout had to stop it,
// so a hang fails the test instead of stalling the suite), stdout and stderr together; standard
// input comes from stdin_file when one is given.
inline CommandResult run_cli_bounded(const std::vector<std::string>& args, int seconds,
                                     const std::string& stdin_file = "") {
  const std::string input = stdin_file.empty() ? " </dev/null" : " <" + shell_quote(stdin_file);
  return run_shell("timeout -k 2 " + std::to_string(seconds) + " " + cli_command_line(args) + input + " 2>&1");
}

}  // namespace shardlm
