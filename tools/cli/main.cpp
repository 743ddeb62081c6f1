// shardlm command line: generate, tokenize, info, bench, plan. Library errors arrive as shardlm::Error
// with a message naming the file or option at fault; they are printed and turned into exit code 1.
// So are CLI11's parse errors (CLI11's own codes, 104-115, would read as crashes to a script), with
// a pointer to the subcommand's --help; only --help itself exits 0.
#include <CLI/CLI.hpp>
#include <fmt/core.h>

#include <exception>
#include <string>

#include "commands.h"
#include "core/error.h"

namespace {

// The message for a parse error, naming the subcommand when none (or an unknown one) was given.
std::string parse_error_message(const CLI::App& app, const CLI::ParseError& error, int argc, char** argv) {
  const std::vector<CLI::App*> parsed = app.get_subcommands();
  if (!parsed.empty())
    return fmt::format("{} (see `shardlm {} --help`)", error.what(), parsed.front()->get_name());
  std::string names;
  for (const CLI::App* command : app.get_subcommands({})) names += (names.empty() ? "" : ", ") + command->get_name();
  const std::string given = argc > 1 ? argv[1] : "";
  if (given.empty() || given.front() == '-')
    return fmt::format("{}; expected a subcommand: {} (see `shardlm --help`)", error.what(), names);
  return fmt::format("unknown subcommand \"{}\"; expected one of: {}", given, names);
}

}  // namespace

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
  shardlm::cli::add_serve_command(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    if (error.get_exit_code() == static_cast<int>(CLI::ExitCodes::Success)) return app.exit(error);  // --help
    fmt::print(stderr, "error: {}\n", parse_error_message(app, error, argc, argv));
    return 1;
  } catch (const shardlm::Error& error) {
    fmt::print(stderr, "error: {}\n", error.what());
    return 1;
  } catch (const std::exception& error) {
    fmt::print(stderr, "error: unexpected failure: {}\n", error.what());
    return 1;
  }
  return 0;
}
