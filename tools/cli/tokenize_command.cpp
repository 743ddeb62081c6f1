// `shardlm tokenize TEXT`: prints the ids as a JSON array, as tokenizer(text)["input_ids"] would.
// TEXT may be - (standard input), or the text may come from --prompt-file.
#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include <memory>

#include "commands.h"
#include "common_options.h"
#include "core/error.h"
#include "prompt_options.h"
#include "tokenizer/tokenizer.h"

namespace shardlm::cli {

void add_tokenize_command(CLI::App& app) {
  struct Options {
    ModelOptions model;
    PromptOptions text;
    bool no_special = false;
  };
  auto options = std::make_shared<Options>();
  CLI::App* command = app.add_subcommand("tokenize", "Print the token ids of TEXT as a JSON array");
  add_model_options(*command, options->model);
  command->add_option("text", options->text.texts, "Text to tokenize, or - to read it from standard input")
      ->expected(0, 1);
  add_prompt_file_option(*command, options->text);
  command->add_flag("--no-special-tokens", options->no_special, "Do not add BOS/EOS from the post-processor");
  command->callback([options] {
    const std::vector<std::string> texts = read_prompts(options->text);
    if (texts.size() != 1) fail("tokenize takes one text: TEXT, - (standard input) or one --prompt-file FILE");
    const Tokenizer tokenizer = Tokenizer::from_dir(prepare_model_dir(options->model));
    fmt::print("{}\n", nlohmann::json(tokenizer.encode(texts[0], !options->no_special)).dump());
  });
}

}  // namespace shardlm::cli
