// generation_config.json parsing. Ranges follow what Transformers' logits processors accept, except
// that temperature 0 is allowed: checkpoints use it to ask for greedy decoding.
#include "io/generation_config.h"

#include <system_error>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/json_fields.h"
#include "io/mapped_file.h"

namespace shardlm {

GenerationConfig GenerationConfig::parse(std::string_view json_text, const std::string& source_name) {
  const nlohmann::json root = parse_json_object(json_text, source_name, "generation config");
  const JsonFields fields(root, source_name);

  GenerationConfig config;
  config.bos_token_id = fields.get_token_id("bos_token_id");
  config.eos_token_ids = fields.get_token_ids("eos_token_id");

  config.temperature = fields.get_float("temperature");
  if (config.temperature && *config.temperature < 0.0f) {
    fields.fail_key("temperature", fmt::format("must not be negative, got {}", *config.temperature));
  }
  config.top_p = fields.get_float("top_p");
  if (config.top_p && !(*config.top_p >= 0.0f && *config.top_p <= 1.0f)) {
    fields.fail_key("top_p", fmt::format("must be between 0 and 1, got {}", *config.top_p));
  }
  config.top_k = fields.get_int("top_k");
  if (config.top_k && *config.top_k < 0) fields.fail_key("top_k", fmt::format("must not be negative, got {}", *config.top_k));
  config.repetition_penalty = fields.get_float("repetition_penalty");
  if (config.repetition_penalty && !(*config.repetition_penalty > 0.0f))
    fields.fail_key("repetition_penalty", fmt::format("must be positive, got {}", *config.repetition_penalty));
  config.min_p = fields.get_float("min_p");
  if (config.min_p && !(*config.min_p >= 0.0f && *config.min_p <= 1.0f))
    fields.fail_key("min_p", fmt::format("must be between 0 and 1, got {}", *config.min_p));
  config.do_sample = fields.get_bool("do_sample");
  config.max_new_tokens = fields.get_int("max_new_tokens");
  if (config.max_new_tokens && *config.max_new_tokens <= 0) {
    fields.fail_key("max_new_tokens", fmt::format("must be positive, got {}", *config.max_new_tokens));
  }
  return config;
}

void check_generation_token_ids(const GenerationConfig& config, int vocab_size, const std::string& source_name) {
  auto check = [&](std::string_view key, int id) {
    if (id >= vocab_size)
      fail("{}: \"{}\" is {}, outside the vocabulary (config.json's vocab_size {})", source_name, key, id, vocab_size);
  };
  if (config.bos_token_id) check("bos_token_id", *config.bos_token_id);
  for (int id : config.eos_token_ids) check("eos_token_id", id);
}

GenerationConfig GenerationConfig::from_dir(const std::filesystem::path& model_dir) {
  const std::filesystem::path path = model_dir / "generation_config.json";
  std::error_code error;
  // Only a file that is not there at all means "no generation defaults"; one that exists but cannot
  // be read is reported by MappedFile::open.
  if (std::filesystem::status(path, error).type() == std::filesystem::file_type::not_found) return {};
  const MappedFile file = MappedFile::open(path);
  const std::span<const std::byte> bytes = file.bytes();
  return parse(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()), path.string());
}

}  // namespace shardlm
