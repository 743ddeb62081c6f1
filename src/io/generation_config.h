// generation_config.json: the token ids and sampling defaults a checkpoint ships with. The file is
// optional and every field in it is too, so each is an optional that the CLI layers its own flags
// over. Its eos ids take precedence over config.json's when generating, as in Transformers.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace shardlm {

struct GenerationConfig {
  std::optional<int> bos_token_id;
  std::vector<int> eos_token_ids;  // "eos_token_id" may be one id or a list
  std::optional<float> temperature, top_p;
  std::optional<int> top_k;
  // Read so that the server can say it leaves them out: shardlm's samplers have neither yet.
  std::optional<float> repetition_penalty, min_p;
  std::optional<bool> do_sample;
  std::optional<int> max_new_tokens;

  static GenerationConfig from_dir(const std::filesystem::path& model_dir);  // absent file -> empty
  static GenerationConfig parse(std::string_view json_text, const std::string& source_name);
};

// Fails, naming source_name and the key, when a token id lies outside the model's vocabulary (the
// file alone does not know its size): such an eos id would never be generated.
void check_generation_token_ids(const GenerationConfig& config, int vocab_size, const std::string& source_name);

}  // namespace shardlm
