// Each subcommand registers itself on the app; its callback runs after parsing.
#pragma once

#include <CLI/CLI.hpp>

namespace shardlm::cli {

void add_generate_command(CLI::App& app);
void add_tokenize_command(CLI::App& app);
void add_info_command(CLI::App& app);
void add_bench_command(CLI::App& app);
void add_bench_comm_command(CLI::App& app);
void add_launch_command(CLI::App& app);
void add_plan_command(CLI::App& app);
void add_serve_command(CLI::App& app);

}  // namespace shardlm::cli
