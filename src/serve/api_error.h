// An error a request gets back, in OpenAI's shape: {"error": {"message", "type", "param", "code"}}
// with an HTTP status. `param` names the request field at fault, where there is one.
#pragma once

#include <nlohmann/json.hpp>

#include <stdexcept>
#include <string>

namespace shardlm::serve {

class ApiError : public std::runtime_error {
 public:
  ApiError(int status, const std::string& message, std::string param = {}, std::string type = {});
  int status() const { return status_; }
  const std::string& param() const { return param_; }
  nlohmann::json body() const;
  // The body as text; never throws (bytes that are not UTF-8 are replaced).
  std::string body_text() const;

 private:
  int status_;
  std::string param_, type_;
};

}  // namespace shardlm::serve
