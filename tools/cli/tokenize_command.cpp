// `shardlm tokenize TEXT`: prints the ids as a JSON array, as tokenizer(text)["input_ids"] would.
#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include <memory>

#include "commands.h"
#include "common_options.h"
#include "tokenizer/tokenizer.h"

namespace shardlm::cli {

void add_tokenize_command(CLI::App& app) {
  struct Options {
    ModelOptions model;
    std::string text;
    bool no_special = false;
  };
  auto options = std::make_shared<Options>();
  CLI::App* command = app.add_subcommand("tokenize", "Print the token ids of TEXT as a JSON array");
  add_model_options(*command, options->model);
  command->add_option("text", options->text, "Text to tokenize")->required();
  command->add_flag("--no-special-tokens", options->no_special, "Do not add BOS/EOS from the post-processor");
  command->callback([options] {
    const Tokenizer tokenizer = Tokenizer::from_dir(prepare_model_dir(options->model));
    fmt::print("{}\n", nlohmann::json(tokenizer.encode(options->text, !options->no_special)).dump());
  });
}

}  // namespace shardlm::cli
