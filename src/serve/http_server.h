// `shardlm serve`'s HTTP side: OpenAI's completions and chat completions APIs, /v1/models, /health,
// /metrics, /tokenize and /detokenize over HTTP/1.1 with keep-alive, and server-sent events for
// streams. Boost.Asio runs every connection on one thread without blocking: a stream's events are
// queued per connection and written as its client reads them, so a slow or stalled reader holds only its own memory and never
// the engine thread; a client that disconnects has its request cancelled at the next step.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "chat/chat_template.h"
#include "serve/engine_loop.h"
#include "serve/reasoning_parser.h"
#include "serve/sampling_defaults.h"
#include "serve/tool_call_parser.h"
#include "tokenizer/tokenizer.h"

namespace shardlm::serve {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8000;  // 0: any free port (listen() says which)
  std::string served_model_name;
  std::string api_key;                    // empty: no authentication
  size_t max_body_bytes = size_t(1) << 20;  // larger bodies get 413
  int max_queued_requests = 8192;           // running and waiting; beyond, 503 with Retry-After
  int64_t max_model_len = 0;              // tokens a sequence may hold (prompt + completion)
  std::vector<int32_t> eos_token_ids;
  SamplingDefaults sampling_defaults;  // what requests get for the sampling fields they leave out
  const chat::ChatTemplate* chat_template = nullptr;  // none: chat completions get a 400 saying so
  // --enable-auto-tool-choice --tool-call-parser NAME: a chat reply to a request with tools (and
  // tool_choice not "none") has the calls its text holds as `tool_calls`. None: replies are text.
  std::optional<ToolCallFormat> tool_call_format;
  // --reasoning-parser NAME: a chat reply's thinking comes back as `reasoning`, apart from its content.
  std::optional<ReasoningFormat> reasoning_format;
};

class HttpServer {
 public:
  // The loop and tokenizer must outlive the server.
  HttpServer(ServerOptions options, EngineLoop& loop, const Tokenizer& tokenizer);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds and listens; returns the port (the one chosen when options.port is 0).
  int listen();
  // Serves until SIGINT or SIGTERM: then no new connections or requests, running streams end with
  // an error event, and it returns.
  void run();

  struct Impl;  // the io context, acceptor and options; defined in http_server.cpp

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace shardlm::serve
