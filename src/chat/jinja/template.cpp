#include "chat/jinja/template.h"

#include "chat/jinja/interpreter.h"
#include "chat/jinja/lexer.h"
#include "chat/jinja/parser.h"
#include "core/error.h"
#include "tokenizer/utf8.h"

namespace shardlm::jinja {

Template::Template(std::string_view source) {
  const size_t invalid = utf8::first_invalid_offset(source);
  if (invalid != utf8::kInvalidOffset) fail("chat template: invalid UTF-8 at byte {}", invalid);
  body_ = parse(tokenize(source));
}

std::string Template::render(const nlohmann::ordered_json& context) const {
  if (!context.is_object()) fail("chat template: the render context must be a JSON object");
  try {
    const Value variables = Value::from_json(context);
    return jinja::render(body_, variables.as_object());
  } catch (const std::bad_alloc&) {
    fail("chat template: the render ran out of memory");
  }
}

}  // namespace shardlm::jinja
