// The body of POST /v1/chat/completions (field names as the `openai` package's
// ChatCompletionCreateParams), turned into what the model's chat template reads: messages whose
// text parts are joined into one string (as vLLM does for text-only templates) and whose tool-call
// arguments are objects rather than JSON text (templates write them with tojson), the tools, and
// vLLM's extensions add_generation_prompt and chat_template_kwargs.
#pragma once

#include <string>
#include <string_view>

#include "serve/request_fields.h"

namespace shardlm::serve {

struct ChatRequest {
  RequestJson messages;  // a non-empty list of {role, content, ...}
  RequestJson tools;     // null when the request has none
  bool tool_choice_none = false;  // tool_choice "none": the reply is text even if it reads as a call
  bool add_generation_prompt = true;
  RequestJson template_kwargs = RequestJson::object();
  GenerationFields generation;  // max_tokens from max_completion_tokens or max_tokens
};

// Throws ApiError (400) naming the field (messages[2].content, tools[0], ...). Sampling fields not
// given take `defaults`.
ChatRequest parse_chat_request(std::string_view body, const std::string& served_model_name,
                               const SamplingDefaults& defaults = {});

}  // namespace shardlm::serve
