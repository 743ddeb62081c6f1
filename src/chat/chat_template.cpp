#include "chat/chat_template.h"

#include <fstream>
#include <sstream>

#include "core/error.h"
#include "tokenizer/tokenizer_config.h"

namespace shardlm::chat {
namespace {

using nlohmann::ordered_json;

std::string read_text(const std::filesystem::path& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) fail("{}: cannot be read", path.string());
  std::ostringstream text;
  text << file.rdbuf();
  return text.str();
}

// tokenizer_config.json's "chat_template": a string, or [{"name": ..., "template": ...}].
std::optional<std::string> template_in_config(const ordered_json& config, const std::string& source) {
  if (!config.contains("chat_template") || config.at("chat_template").is_null()) return std::nullopt;
  const ordered_json& value = config.at("chat_template");
  if (value.is_string()) return value.get<std::string>();
  if (value.is_array()) {
    for (const ordered_json& named : value)
      if (named.is_object() && named.contains("name") && named.at("name") == "default" && named.contains("template") &&
          named.at("template").is_string())
        return named.at("template").get<std::string>();
    fail("{}: chat_template lists named templates but none named \"default\"", source);
  }
  fail("{}: chat_template must be a string or a list of named templates", source);
}

}  // namespace

std::optional<ChatTemplate> ChatTemplate::load(const std::filesystem::path& model_dir, const std::string& override_template) {
  const std::filesystem::path config_path = model_dir / "tokenizer_config.json";
  std::string config_text;
  ordered_json config = ordered_json::object();
  if (std::filesystem::exists(config_path)) {
    config_text = read_text(config_path);
    try {
      config = ordered_json::parse(config_text);
    } catch (const ordered_json::exception& error) {
      fail("{}: not valid JSON: {}", config_path.string(), error.what());
    }
    if (!config.is_object()) fail("{}: must be a JSON object", config_path.string());
  }
  const TokenizerConfig tokens = parse_tokenizer_config(config_text, config_path.string());
  const std::string bos = tokens.bos_token ? tokens.bos_token->content : "";
  const std::string eos = tokens.eos_token ? tokens.eos_token->content : "";

  auto make = [&](const std::string& source, const std::string& origin) {
    try {
      return ChatTemplate(source, bos, eos, origin);
    } catch (const Error& error) {
      fail("{}: {}", origin, error.what());
    }
  };
  if (!override_template.empty()) {
    if (std::filesystem::is_regular_file(override_template))
      return make(read_text(override_template), "--chat-template " + override_template);
    if (override_template.find("{{") == std::string::npos && override_template.find("{%") == std::string::npos)
      fail("--chat-template {}: no such file (nor template text: it has no {{{{ or {{%)", override_template);
    return make(override_template, "--chat-template (text)");
  }
  const std::filesystem::path beside = model_dir / "chat_template.jinja";
  if (std::filesystem::exists(beside)) return make(read_text(beside), beside.string());
  if (const auto source = template_in_config(config, config_path.string()))
    return make(*source, config_path.string() + " (chat_template)");
  return std::nullopt;
}

ChatTemplate::ChatTemplate(std::string_view source, std::string bos_token, std::string eos_token, std::string origin)
    : template_(source), bos_token_(std::move(bos_token)), eos_token_(std::move(eos_token)), origin_(std::move(origin)) {}

std::string ChatTemplate::render(const ordered_json& messages, const ordered_json& tools, bool add_generation_prompt,
                                 const ordered_json& extra) const {
  ordered_json context = ordered_json::object();
  context["messages"] = messages;
  context["tools"] = tools;
  context["add_generation_prompt"] = add_generation_prompt;
  context["bos_token"] = bos_token_;
  context["eos_token"] = eos_token_;
  if (extra.is_object())
    for (const auto& [key, value] : extra.items()) context[key] = value;
  return template_.render(context);
}

}  // namespace shardlm::chat
