// shardlm command line: generate, tokenize, info, bench, plan. Library errors arrive as shardlm::Error
// with a message naming the file or option at fault; they are printed and turned into exit code 1.
#include <CLI/CLI.hpp>
#include <fmt/core.h>

#include <exception>

#include "commands.h"
#include "core/error.h"

int main(int argc, char** argv) {
  CLI::App app{"shardlm: run Hugging Face LLM checkpoints on the CPU and NVIDIA GPUs, whole or split across ranks"};
  app.require_subcommand(1);
  shardlm::cli::add_generate_command(app);
  shardlm::cli::add_tokenize_command(app);
  shardlm::cli::add_info_command(app);
  shardlm::cli::add_bench_command(app);
  shardlm::cli::add_bench_comm_command(app);
  shardlm::cli::add_launch_command(app);
  shardlm::cli::add_plan_command(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    return app.exit(error);
  } catch (const shardlm::Error& error) {
    fmt::print(stderr, "error: {}\n", error.what());
    return 1;
  } catch (const std::exception& error) {
    fmt::print(stderr, "error: unexpected failure: {}\n", error.what());
    return 1;
  }
  return 0;
}
