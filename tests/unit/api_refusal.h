// What a request parser says about a body: the status and the `param` of the ApiError it throws,
// or {200, ""} when it accepts the body. Shared by the completions and chat request tests.
#pragma once

#include <string>
#include <utility>

#include "serve/api_error.h"

namespace shardlm::serve {

template <typename Parse>
std::pair<int, std::string> refusal_of(Parse&& parse, const std::string& body) {
  try {
    parse(body);
  } catch (const ApiError& error) {
    const nlohmann::json json = error.body();
    return {error.status(), json["error"]["param"].is_null() ? "" : json["error"]["param"].get<std::string>()};
  }
  return {200, ""};
}

}  // namespace shardlm::serve
