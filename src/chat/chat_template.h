// A model's chat template: where Transformers finds it, and what it is rendered with. The source is
// `--chat-template` when given (a file, or the template text itself, as vLLM accepts), else
// chat_template.jinja beside tokenizer_config.json, else tokenizer_config.json's "chat_template" (a
// string, or a list of named templates whose "default" is taken). The variables are those
// Transformers' apply_chat_template passes: messages, tools, add_generation_prompt, bos_token,
// eos_token, and any extra keyword arguments (chat_template_kwargs, e.g. enable_thinking).
#pragma once

#include <filesystem>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "chat/jinja/template.h"

namespace shardlm::chat {

class ChatTemplate {
 public:
  // nullopt when the model has no template and none is given. Throws Error naming the file or
  // option whose template cannot be read or parsed.
  static std::optional<ChatTemplate> load(const std::filesystem::path& model_dir, const std::string& override_template);

  ChatTemplate(std::string_view source, std::string bos_token, std::string eos_token, std::string origin);

  // `tools` is null when the request has none (templates test `tools is not none`); `extra` is an
  // object whose keys become variables too. Throws Error from the template (raise_exception included).
  std::string render(const nlohmann::ordered_json& messages, const nlohmann::ordered_json& tools,
                     bool add_generation_prompt, const nlohmann::ordered_json& extra) const;

  // Where the template came from ("--chat-template FILE", "DIR/chat_template.jinja", ...).
  const std::string& origin() const { return origin_; }

 private:
  jinja::Template template_;
  std::string bos_token_, eos_token_;
  std::string origin_;
};

}  // namespace shardlm::chat
