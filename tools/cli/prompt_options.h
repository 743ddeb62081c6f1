// Where prompts come from: --prompt TEXT, --prompt - (standard input) and --prompt-file FILE, as
// llama.cpp's -p and -f. One command-line argument holds at most 128 KiB on Linux, so long
// prompts need a file or a pipe.
#pragma once

#include <string>
#include <vector>

#include <CLI/CLI.hpp>

namespace shardlm::cli {

struct PromptOptions {
  std::vector<std::string> texts;  // --prompt (or tokenize's TEXT); "-" reads standard input
  std::vector<std::string> files;  // --prompt-file
};

// Adds --prompt/-p (repeatable) and --prompt-file (repeatable).
void add_prompt_options(CLI::App& command, PromptOptions& options);
// Adds --prompt-file alone, for a command that takes its text otherwise.
void add_prompt_file_option(CLI::App& command, PromptOptions& options);

// The prompts, read now: every text in order, then every file. A single trailing newline of a file
// or of standard input is dropped (editors and echo add one), as llama.cpp does. Fails naming the
// file, or standard input when "-" is given twice.
std::vector<std::string> read_prompts(const PromptOptions& options);

}  // namespace shardlm::cli
