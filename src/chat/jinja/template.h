// A Jinja template compiled once and rendered many times: the subset of Jinja that Hugging Face chat
// templates use, rendering as @huggingface/jinja (Transformers.js) does, byte for byte. No C++ Jinja
// library is packaged for Debian; this one is checked against that npm package on real templates.
#pragma once

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "chat/jinja/ast.h"

namespace shardlm::jinja {

class Template {
 public:
  // Throws Error naming line and column when the source is not valid UTF-8 or not valid Jinja.
  explicit Template(std::string_view source);
  // The context's top-level keys are the template's variables. Throws Error naming where rendering
  // failed, including a template's own raise_exception().
  std::string render(const nlohmann::ordered_json& context) const;

 private:
  Body body_;
};

}  // namespace shardlm::jinja
