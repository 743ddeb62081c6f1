// The JSON shapes of OpenAI's completion and chat completion responses, whole and streamed: what
// differs between the two endpoints (object names, id prefixes, `text` against `message`/`delta`)
// lives here so the connection code is written once for both.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>

namespace shardlm::serve {

enum class Endpoint { Completions, ChatCompletions };

// "cmpl-N" or "chatcmpl-N".
std::string response_id(Endpoint endpoint, uint64_t number);

// {"id", "object", "created", "model"}; `chunk` selects the streamed object name.
nlohmann::json response_head(Endpoint endpoint, bool chunk, const std::string& id, int64_t created,
                             const std::string& model);

// A streamed choice carrying new text, its finish reason on the last one (null before).
nlohmann::json streamed_choice(Endpoint endpoint, size_t index, const std::string& text,
                               const std::optional<std::string>& finish_reason);

// The first streamed chat choice, which names the assistant role before any text (as OpenAI sends
// it); nothing for completions.
std::optional<nlohmann::json> opening_choice(Endpoint endpoint, size_t index);

// A choice of a whole (not streamed) response.
nlohmann::json whole_choice(Endpoint endpoint, size_t index, const std::string& text, const std::string& finish_reason);

}  // namespace shardlm::serve
