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

// Runs `shardlm ARGS`.
inline CommandResult run_cli(const std::vector<std::string>& args, bool with_stderr = true) {
  std::string command = shell_quote(SHARDLM_CLI_PATH);
  for (const std::string& arg : args) command += " " + shell_quote(arg);
  command += with_stderr ? " 2>&1" : " 2>/dev/null";
  FILE* pipe = popen(command.c_str(), "r");
  std::string output;
  std::array<char, 4096> buffer;
  size_t n;
  while ((n = fread(buffer.data(), 1, buffer.size(), pipe)) > 0) output.append(buffer.data(), n);
  const int status = pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status), output};
}

}  // namespace shardlm
