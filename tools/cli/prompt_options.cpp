// A prompt file is read with a stream, not mapped: `--prompt-file <(command)` is a pipe, which is
// a fine place for a prompt to come from (unlike a model file).
#include "prompt_options.h"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>

#include "core/error.h"

namespace shardlm::cli {
namespace {

std::string without_trailing_newline(std::string text) {
  if (text.ends_with('\n')) text.pop_back();
  if (text.ends_with('\r')) text.pop_back();
  return text;
}

std::string read_prompt_file(const std::string& path) {
  if (std::filesystem::is_directory(path)) fail("--prompt-file {}: is a directory", path);
  std::ifstream file(path, std::ios::binary);
  if (!file) fail("--prompt-file {}: cannot open: {}", path, std::strerror(errno));
  std::string text((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  if (file.bad()) fail("--prompt-file {}: read error", path);
  return without_trailing_newline(std::move(text));
}

}  // namespace

void add_prompt_options(CLI::App& command, PromptOptions& options) {
  command.add_option("--prompt,-p", options.texts,
                     "Prompt text, or - to read it from standard input (repeat for a batch of prompts)");
  add_prompt_file_option(command, options);
}

void add_prompt_file_option(CLI::App& command, PromptOptions& options) {
  command.add_option("--prompt-file", options.files, "Read a prompt from FILE (repeatable; for prompts of any length)");
}

std::vector<std::string> read_prompts(const PromptOptions& options) {
  std::vector<std::string> prompts;
  bool read_stdin = false;
  for (const std::string& text : options.texts) {
    if (text != "-") {
      prompts.push_back(text);
      continue;
    }
    if (read_stdin) fail("--prompt -: standard input holds one prompt; give the others as text or --prompt-file");
    read_stdin = true;
    std::string input((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
    if (std::cin.bad()) fail("--prompt -: cannot read standard input");
    prompts.push_back(without_trailing_newline(std::move(input)));
  }
  for (const std::string& file : options.files) prompts.push_back(read_prompt_file(file));
  return prompts;
}

}  // namespace shardlm::cli
