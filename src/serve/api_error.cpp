#include "serve/api_error.h"

namespace shardlm::serve {
namespace {

std::string type_for(int status) {
  switch (status) {
    case 401: return "authentication_error";
    case 404: return "not_found_error";
    case 413: return "request_too_large";
    case 429: return "rate_limit_error";
    case 503: return "service_unavailable";
    default: return status >= 500 ? "server_error" : "invalid_request_error";
  }
}

}  // namespace

ApiError::ApiError(int status, const std::string& message, std::string param, std::string type)
    : std::runtime_error(message), status_(status), param_(std::move(param)), type_(std::move(type)) {
  if (type_.empty()) type_ = type_for(status);
}

nlohmann::json ApiError::body() const {
  return {{"error",
           {{"message", what()},
            {"type", type_},
            {"param", param_.empty() ? nlohmann::json(nullptr) : nlohmann::json(param_)},
            {"code", status_}}}};
}

std::string ApiError::body_text() const { return body().dump(-1, ' ', false, nlohmann::json::error_handler_t::replace); }

}  // namespace shardlm::serve
