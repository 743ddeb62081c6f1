#include "serve/http_server.h"

#include <fmt/core.h>

#include <utility>  // before Asio, whose awaitable.hpp uses std::exchange without it (Boost 1.74)

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <deque>
#include <nlohmann/json.hpp>
#include <random>

#include "core/error.h"
#include "serve/api_error.h"
#include "serve/chat_page.h"
#include "serve/chat_reply_reader.h"
#include "serve/chat_request.h"
#include "serve/completion_request.h"
#include "serve/openai_responses.h"
#include "serve/prometheus_text.h"
#include "serve/token_ids.h"

namespace shardlm::serve {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;
using nlohmann::json;

namespace {

// JSON text that never throws: text from the model or a client that is not UTF-8 is replaced.
std::string to_text(const json& value) { return value.dump(-1, ' ', false, json::error_handler_t::replace); }

int64_t unix_time() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// One choice of a completion as its updates arrive.
struct Choice {
  std::shared_ptr<RequestTicket> ticket;
  std::string text;
  std::string finish_reason;
  int prompt_tokens = 0, completion_tokens = 0;
  bool finished = false;
  bool counts_prompt = true;  // a prompt's tokens count once in usage, however many choices it has
  // With logprobs asked for: every token's, and how many a stream has sent (a token whose text is
  // held back, for a stop string or an incomplete character, goes out with the next text).
  bool wants_logprobs = false;
  std::vector<TokenLogprobs> logprobs;
  size_t logprobs_sent = 0, logprobs_text_offset = 0;
  // Echo with logprobs: the prompt, whose tokens' log-probabilities open the choice's when its first
  // token comes (the engine scores them in prefill), and, streaming, the echoed text sent with them.
  std::vector<int32_t> scored_prompt;
  std::string unsent_echo;
  ChatReplyReader reader;  // a chat reply's reasoning and tool calls, when the server parses them
};

}  // namespace

struct HttpServer::Impl {
  ServerOptions options;
  EngineLoop& loop;
  const Tokenizer& tokenizer;
  net::io_context io{1};
  tcp::acceptor acceptor{io};
  net::signal_set signals{io, SIGINT, SIGTERM};
  bool stopping = false;
  uint64_t next_completion = 1;
  std::mt19937_64 seeds{std::random_device{}()};

  Impl(ServerOptions o, EngineLoop& l, const Tokenizer& t) : options(std::move(o)), loop(l), tokenizer(t) {}
  void accept();
};

namespace {

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, HttpServer::Impl& server) : socket_(std::move(socket)), server_(server) {}

  void start() { read_request(); }

 private:
  void read_request() {
    parser_.emplace();
    parser_->body_limit(server_.options.max_body_bytes);
    http::async_read(socket_, buffer_, *parser_,
                     [self = shared_from_this()](beast::error_code error, size_t) { self->on_request(error); });
  }

  void on_request(beast::error_code error) {
    started_ = std::chrono::steady_clock::now();
    if (error == http::error::end_of_stream || error == net::error::eof || error == net::error::operation_aborted)
      return close();
    if (error) {
      // What the parser read of the head, for the log line.
      request_ = {};
      request_.method_string(parser_->get().method_string());
      request_.target(parser_->get().target());
    }
    if (error == http::error::body_limit) {
      keep_alive_ = false;
      return send_error(ApiError(413, fmt::format("the body is larger than {} bytes", server_.options.max_body_bytes)));
    }
    if (error) {
      keep_alive_ = false;
      return send_error(ApiError(400, "malformed HTTP request: " + error.message()));
    }
    request_ = parser_->release();
    keep_alive_ = request_.keep_alive();
    try {
      route();
    } catch (const ApiError& api_error) {
      send_error(api_error);
    } catch (const std::exception& other) {
      send_error(ApiError(400, other.what()));
    }
  }

  void route() {
    const std::string target(request_.target());
    const std::string path = target.substr(0, target.find('?'));
    const http::verb method = request_.method();
    if (server_.stopping) throw ApiError(503, "the server is shutting down");
    const bool generates = method == http::verb::post && (path == "/v1/completions" || path == "/v1/chat/completions");
    if (generates &&
        server_.loop.running() + server_.loop.waiting() >= server_.options.max_queued_requests)
      throw ApiError(503, fmt::format("the server holds {} requests already: retry later",
                                      server_.options.max_queued_requests));
    if (path.rfind("/v1/", 0) == 0 && !server_.options.api_key.empty() &&
        request_[http::field::authorization] != "Bearer " + server_.options.api_key)
      throw ApiError(401, "a valid API key is required: Authorization: Bearer KEY");
    if (method == http::verb::get && path == "/health") return send(http::status::ok, "", "text/plain");
    // Open like /health: the page holds nothing secret, and asks for the API key to send on its calls.
    if (method == http::verb::get && path == "/")
      return send(http::status::ok, std::string(chat_page_html()), "text/html; charset=utf-8");
    // Outside /v1, so open without the API key, as vLLM leaves it: a Prometheus scraper is set up
    // apart from the API's clients, and the series hold counts and timings, never a prompt or text.
    if (method == http::verb::get && path == "/metrics")
      return send(http::status::ok, server_.loop.metrics().render(), kPrometheusContentType);
    if (method == http::verb::get && path == "/v1/models") return send_json(http::status::ok, models());
    if (method == http::verb::post && path == "/v1/completions") return completions();
    if (method == http::verb::post && path == "/v1/chat/completions") return chat_completions();
    if (method == http::verb::post && path == "/tokenize") return send_json(http::status::ok, tokenize());
    if (method == http::verb::post && path == "/detokenize") return send_json(http::status::ok, detokenize());
    throw ApiError(404, fmt::format("no route for {} {}", std::string(request_.method_string()), path));
  }

  json models() const {
    return {{"object", "list"},
            {"data",
             {{{"id", server_.options.served_model_name},
               {"object", "model"},
               {"created", unix_time()},
               {"owned_by", "shardlm"},
               {"max_model_len", server_.options.max_model_len}}}}};
  }

  json tokenize() const {
    const RequestJson body = parse_body(request_.body());
    if (!body.contains("prompt") || !body.at("prompt").is_string()) throw ApiError(400, "prompt must be a string", "prompt");
    bool add_special = true;
    if (body.contains("add_special_tokens")) {
      if (!body.at("add_special_tokens").is_boolean())
        throw ApiError(400, "add_special_tokens must be a boolean", "add_special_tokens");
      add_special = body.at("add_special_tokens").get<bool>();
    }
    const std::vector<int32_t> tokens = server_.tokenizer.encode(body.at("prompt").get<std::string>(), add_special);
    return {{"tokens", tokens}, {"count", tokens.size()}, {"max_model_len", server_.options.max_model_len}};
  }

  json detokenize() const {
    const RequestJson body = parse_body(request_.body());
    if (!body.contains("tokens") || !body.at("tokens").is_array()) throw ApiError(400, "tokens must be a list of token ids", "tokens");
    const std::vector<int32_t> tokens = parse_token_ids(body.at("tokens"), "tokens");
    try {
      return {{"prompt", server_.tokenizer.decode(tokens)}};
    } catch (const std::exception& error) {
      throw ApiError(400, error.what(), "tokens");
    }
  }

  void completions() {
    const CompletionRequest request = parse_completion_request(request_.body(), server_.options.served_model_name,
                                                                server_.options.sampling_defaults);
    std::vector<std::vector<int32_t>> prompts;
    std::vector<std::string> echoes;
    for (const Prompt& prompt : request.prompts) {
      const auto* text = std::get_if<std::string>(&prompt);
      prompts.push_back(text ? server_.tokenizer.encode(*text) : std::get<std::vector<int32_t>>(prompt));
      if (request.generation.echo) echoes.push_back(text ? *text : server_.tokenizer.decode(prompts.back()));
    }
    generate(Endpoint::Completions, request.generation, std::move(prompts), std::move(echoes));
  }

  void chat_completions() {
    const ChatRequest request = parse_chat_request(request_.body(), server_.options.served_model_name, server_.options.sampling_defaults);
    const chat::ChatTemplate* chat_template = server_.options.chat_template;
    if (chat_template == nullptr)
      throw ApiError(400, "the model has no chat template (none in tokenizer_config.json, no chat_template.jinja): "
                          "start the server with --chat-template FILE, or use /v1/completions", "messages");
    std::string prompt;
    try {
      prompt = chat_template->render(request.messages, request.tools, request.add_generation_prompt, request.template_kwargs);
    } catch (const Error& error) {
      throw ApiError(400, std::string("messages: the chat template cannot render them: ") + error.what(), "messages");
    }
    // The template writes the special tokens itself, as Transformers' apply_chat_template tokenizes.
    std::vector<int32_t> ids = server_.tokenizer.encode(prompt, /*add_special_tokens=*/false);
    GenerationFields generation = request.generation;
    // Without a limit a reply may run to the end of the context, as OpenAI's and vLLM's do, or to
    // generation_config.json's max_new_tokens when that comes first.
    if (!generation.max_tokens) {
      int64_t limit = std::max<int64_t>(server_.options.max_model_len - int64_t(ids.size()), 1);
      if (const std::optional<int> from_file = server_.options.sampling_defaults.default_max_tokens)
        limit = std::min<int64_t>(limit, *from_file);
      generation.max_tokens = int(limit);
    }
    if (server_.options.tool_call_format && !request.tools.is_null() && !request.tool_choice_none)
      tool_format_ = server_.options.tool_call_format;
    // Mistral marks calls with a special token, which the reply must keep to be read.
    if (tool_format_ == ToolCallFormat::Mistral) generation.skip_special_tokens = false;
    reasoning_format_ = server_.options.reasoning_format;
    prompt_thinking_ = prompt_thinking(prompt);
    std::vector<std::vector<int32_t>> prompts;
    prompts.push_back(std::move(ids));
    generate(Endpoint::ChatCompletions, generation, std::move(prompts));
  }

  // Submits `n` engine requests per prompt (choice p * n + j) and answers as they finish or stream;
  // `echoes` (none, or one per prompt) open the choices' text.
  void generate(Endpoint endpoint, GenerationFields generation, std::vector<std::vector<int32_t>> prompts,
                std::vector<std::string> echoes = {}) {
    // The connection closes after a completion: the read that watches for a disconnect stays
    // pending until then, and no second read may start beside it.
    keep_alive_ = false;
    if (!generation.seeded) generation.sampling.seed = server_.seeds();
    endpoint_ = endpoint;
    id_ = response_id(endpoint, server_.next_completion++);
    created_ = unix_time();
    stream_ = generation.stream;
    include_usage_ = generation.include_usage;
    std::vector<SchedulerRequest> scheduled;
    for (const std::vector<int32_t>& prompt : prompts) {
      for (int j = 0; j < generation.n; ++j) {
        SchedulerRequest each;
        each.prompt = prompt;
        each.max_tokens = *generation.max_tokens;
        each.sampling = generation.sampling;
        // The choices of one prompt draw different samples, each still repeatable from the seed.
        each.sampling.seed = generation.sampling.seed + uint64_t(j);
        each.stop = generation.stop;
        each.prompt_logprobs = !echoes.empty() && generation.sampling.logprobs >= 0;
        each.skip_special_tokens = generation.skip_special_tokens;
        if (!generation.ignore_eos) each.eos_token_ids = server_.options.eos_token_ids;
        // Refused here, before a stream's 200 head is sent, rather than as an event after it.
        if (j == 0) server_.loop.check(each);
        scheduled.push_back(std::move(each));
      }
    }
    choices_.resize(scheduled.size());
    for (size_t index = 0; index < choices_.size(); ++index) {
      Choice& choice = choices_[index];
      choice.counts_prompt = index % size_t(generation.n) == 0;
      choice.wants_logprobs = generation.sampling.logprobs >= 0;
      choice.reader = ChatReplyReader(reasoning_format_, tool_format_, prompt_thinking_);
      if (scheduled[index].prompt_logprobs) choice.scored_prompt = scheduled[index].prompt;
      if (!echoes.empty() && !stream_) choice.text = echoes[index / size_t(generation.n)];
      if (!echoes.empty() && stream_ && scheduled[index].prompt_logprobs) choice.unsent_echo = echoes[index / size_t(generation.n)];
    }
    if (stream_) {
      start_stream();
      for (size_t index = 0; index < scheduled.size(); ++index) {
        std::optional<json> opening = opening_choice(endpoint_, index);
        // An echo whose tokens' log-probabilities are still to come waits for them.
        if (!opening && !echoes.empty() && !scheduled[index].prompt_logprobs)
          opening = streamed_choice(endpoint_, index, echoes[index / size_t(generation.n)], std::nullopt);
        if (!opening) continue;
        json event = chunk();
        event["choices"] = json::array({*opening});
        queue_event(to_text(event));
      }
    }
    for (size_t index = 0; index < scheduled.size(); ++index) {
      auto self = shared_from_this();
      net::any_io_executor executor = socket_.get_executor();
      RequestSink sink;
      sink.on_update = [self, executor, index](const RequestUpdate& update) {
        net::post(executor, [self, index, update] { self->on_update(index, update); });
      };
      sink.on_error = [self, executor](int status, const std::string& message, const std::string& param) {
        net::post(executor, [self, status, message, param] { self->on_failure(ApiError(status, message, param)); });
      };
      choices_[index].ticket = server_.loop.submit(std::move(scheduled[index]), std::move(sink));
    }
    watch_for_disconnect();
  }

  // While a completion runs, a read that ends means the client has gone: its requests are cancelled.
  void watch_for_disconnect() {
    socket_.async_read_some(buffer_.prepare(4096), [self = shared_from_this()](beast::error_code error, size_t bytes) {
      self->buffer_.commit(bytes);
      if (error && !self->done_) {
        self->client_gone();
      } else if (!error && !self->done_) {
        self->watch_for_disconnect();
      }
    });
  }

  // The client closed its connection before the completion finished (nginx's 499): its requests
  // leave the engine at the next step.
  void client_gone() {
    client_gone_ = true;
    cancel_all();
    if (done_) return;
    done_ = true;
    log(499);
  }

  void cancel_all() {
    for (Choice& choice : choices_)
      if (choice.ticket) choice.ticket->cancel();
  }

  void on_update(size_t index, const RequestUpdate& update) {
    if (done_) return;
    Choice& choice = choices_[index];
    choice.text += update.text;
    choice.prompt_tokens = update.prompt_tokens;
    choice.completion_tokens = update.completion_tokens;
    if (!choice.scored_prompt.empty()) {
      choice.logprobs.push_back({choice.scored_prompt[0], std::nullopt});
      for (size_t i = 1; i < choice.scored_prompt.size(); ++i)
        choice.logprobs.push_back({choice.scored_prompt[i], update.prompt_logprobs.at(i - 1)});
      choice.scored_prompt.clear();
    }
    std::string text = std::exchange(choice.unsent_echo, {}) + update.text;
    if (update.logprobs) choice.logprobs.push_back({update.token, *update.logprobs});
    if (update.finished) {
      choice.finished = true;
      choice.finish_reason = update.finish_reason;
    }
    ChatExtras extras;
    if (stream_ && choice.reader.reads()) {
      ReplyParts released = choice.reader.release(choice.text, choice.finished);
      text = std::move(released.content);
      extras = extras_of(choice, std::move(released), /*streamed=*/true);
    }
    if (stream_) {
      if (!text.empty() || !extras.reasoning.empty() || update.finished) {
        json logprobs = nullptr;
        if (choice.wants_logprobs) {
          const std::span<const TokenLogprobs> unsent = std::span(choice.logprobs).subspan(choice.logprobs_sent);
          logprobs = logprobs_json(endpoint_, unsent, server_.tokenizer, choice.logprobs_text_offset);
          for (const TokenLogprobs& each : unsent)
            choice.logprobs_text_offset += text_characters(server_.tokenizer.decode(std::span<const int32_t>(&each.token, 1)));
          choice.logprobs_sent = choice.logprobs.size();
        }
        json event = chunk();
        event["choices"] = json::array({streamed_choice(endpoint_, index, text,
                                                        update.finished ? std::optional(choice.finish_reason) : std::nullopt,
                                                        logprobs, extras)});
        queue_event(to_text(event));
      }
    }
    if (std::all_of(choices_.begin(), choices_.end(), [](const Choice& c) { return c.finished; })) finish();
  }

  // The reasoning and tool calls of a parsed reply; calls make the finish reason "tool_calls".
  ChatExtras extras_of(Choice& choice, ReplyParts parts, bool streamed) {
    ChatExtras extras;
    extras.reasoning = std::move(parts.reasoning);
    if (!parts.calls.empty()) {
      extras.tool_calls = calls_json(parts.calls, streamed);
      choice.finish_reason = "tool_calls";
    }
    return extras;
  }

  json calls_json(std::span<const ToolCall> calls, bool streamed) {
    std::vector<std::string> ids;
    for (size_t i = 0; i < calls.size(); ++i) ids.push_back(tool_call_id(*tool_format_, server_.seeds()));
    return tool_calls_json(calls, ids, streamed);
  }

  json usage() const {
    int prompt = 0, completion = 0;
    for (const Choice& choice : choices_) {
      if (choice.counts_prompt) prompt += choice.prompt_tokens;
      completion += choice.completion_tokens;
    }
    return {{"prompt_tokens", prompt}, {"completion_tokens", completion}, {"total_tokens", prompt + completion}};
  }

  json chunk() const { return response_head(endpoint_, true, id_, created_, server_.options.served_model_name); }

  void finish() {
    done_ = true;
    log(200);
    if (stream_) {
      if (include_usage_) {
        json last = chunk();
        last["choices"] = json::array();
        last["usage"] = usage();
        queue_event(to_text(last));
      }
      queue_event("[DONE]");
      close_after_writes_ = true;
      return;
    }
    json body = response_head(endpoint_, false, id_, created_, server_.options.served_model_name);
    json choices = json::array();
    for (size_t index = 0; index < choices_.size(); ++index) {
      Choice& choice = choices_[index];
      ChatExtras extras;
      if (choice.reader.reads()) {
        ReplyParts parts = choice.reader.whole(choice.text);
        choice.text = std::move(parts.content);
        extras = extras_of(choice, std::move(parts), /*streamed=*/false);
      }
      choices.push_back(whole_choice(endpoint_, index, choice.text, choice.finish_reason,
                                     choice.wants_logprobs ? logprobs_json(endpoint_, choice.logprobs, server_.tokenizer, 0)
                                                           : json(nullptr),
                                     extras));
    }
    body["choices"] = choices;
    body["usage"] = usage();
    send_json(http::status::ok, body);
  }

  void on_failure(const ApiError& error) {
    if (done_) return;
    done_ = true;
    cancel_all();
    log(error.status());
    if (stream_) {
      queue_event(error.body_text());
      queue_event("[DONE]");
      close_after_writes_ = true;
      return;
    }
    send_error(error);
  }

  // Server-sent events: the head, then one `data:` event per chunk; the body ends when the
  // connection closes.
  void start_stream() {
    pending_.push_back(
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n");
    write_pending();
  }

  void queue_event(const std::string& data) {
    if (client_gone_) return;
    pending_.push_back("data: " + data + "\n\n");
    write_pending();
  }

  void write_pending() {
    if (writing_ || pending_.empty()) return;
    writing_ = true;
    net::async_write(socket_, net::buffer(pending_.front()),
                     [self = shared_from_this()](beast::error_code error, size_t) {
                       self->writing_ = false;
                       self->pending_.pop_front();
                       if (error) {
                         self->client_gone();
                         return self->close();
                       }
                       if (!self->pending_.empty()) return self->write_pending();
                       if (self->close_after_writes_) self->close();
                     });
  }

  void send_error(const ApiError& error) {
    if (!done_) log(error.status());
    done_ = true;
    auto response = std::make_shared<http::response<http::string_body>>(http::status(error.status()), 11);
    response->set(http::field::content_type, "application/json");
    if (error.status() == 503) response->set(http::field::retry_after, "1");
    response->body() = error.body_text();
    write_response(response);
  }

  void send_json(http::status status, const json& body) { send(status, to_text(body), "application/json"); }

  void send(http::status status, std::string body, const char* content_type) {
    auto response = std::make_shared<http::response<http::string_body>>(status, 11);
    response->set(http::field::content_type, content_type);
    response->body() = std::move(body);
    write_response(response);
  }

  void write_response(std::shared_ptr<http::response<http::string_body>> response) {
    if (client_gone_) return close();
    response->set(http::field::server, "shardlm");
    response->keep_alive(keep_alive_ && !server_.stopping);
    response->prepare_payload();
    http::async_write(socket_, *response, [self = shared_from_this(), response](beast::error_code error, size_t) {
      if (error || !response->keep_alive()) return self->close();
      self->reset();
      self->read_request();
    });
  }

  void reset() {
    choices_.clear();
    done_ = stream_ = include_usage_ = close_after_writes_ = false;
  }

  void log(int status) const {
    const double ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started_).count();
    const json u = choices_.empty() ? json() : usage();
    fmt::print("[shardlm] {} {} {}{} {:.1f} ms\n", std::string(request_.method_string()), std::string(request_.target()),
               status, u.is_null() ? "" : fmt::format(" prompt={} completion={}", u["prompt_tokens"].get<int>(),
                                                      u["completion_tokens"].get<int>()),
               ms);
    std::fflush(stdout);
  }

  void close() {
    beast::error_code ignored;
    socket_.shutdown(tcp::socket::shutdown_both, ignored);
    socket_.close(ignored);
  }

  tcp::socket socket_;
  HttpServer::Impl& server_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  http::request<http::string_body> request_;
  std::chrono::steady_clock::time_point started_;
  bool keep_alive_ = true;
  // The completion in flight on this connection.
  Endpoint endpoint_ = Endpoint::Completions;
  std::string id_;
  int64_t created_ = 0;
  std::vector<Choice> choices_;
  bool stream_ = false, include_usage_ = false, done_ = false, client_gone_ = false;
  // How a chat request's replies are read: tool calls when it has tools and the server parses
  // them, reasoning when the server splits it out.
  std::optional<ToolCallFormat> tool_format_;
  std::optional<ReasoningFormat> reasoning_format_;
  PromptThinking prompt_thinking_ = PromptThinking::None;
  std::deque<std::string> pending_;  // stream bytes not yet written
  bool writing_ = false, close_after_writes_ = false;
};

}  // namespace

void HttpServer::Impl::accept() {
  acceptor.async_accept([this](beast::error_code error, tcp::socket socket) {
    if (error == net::error::operation_aborted || !acceptor.is_open()) return;  // stopping
    if (!error) {
      std::make_shared<Session>(std::move(socket), *this)->start();
      return accept();
    }
    // Out of file descriptors (or another transient failure): the connections already open go on;
    // accepting resumes shortly, when some may have closed.
    fmt::print(stderr, "[shardlm] accept: {}\n", error.message());
    auto retry = std::make_shared<net::steady_timer>(io, std::chrono::milliseconds(50));
    retry->async_wait([this, retry](beast::error_code) { accept(); });
  });
}

HttpServer::HttpServer(ServerOptions options, EngineLoop& loop, const Tokenizer& tokenizer)
    : impl_(std::make_unique<Impl>(std::move(options), loop, tokenizer)) {}

HttpServer::~HttpServer() = default;

int HttpServer::listen() {
  Impl& s = *impl_;
  beast::error_code error;
  const net::ip::address address = net::ip::make_address(s.options.host, error);
  if (error) fail("--host: \"{}\" is not an IP address", s.options.host);
  if (s.options.port < 0 || s.options.port > 65535) fail("--port must be between 0 and 65535, got {}", s.options.port);
  const tcp::endpoint endpoint(address, uint16_t(s.options.port));
  s.acceptor.open(endpoint.protocol());
  s.acceptor.set_option(net::socket_base::reuse_address(true));
  s.acceptor.bind(endpoint, error);
  if (error) fail("--host {} --port {}: cannot listen there: {}", s.options.host, s.options.port, error.message());
  s.acceptor.listen(net::socket_base::max_listen_connections);
  return s.acceptor.local_endpoint().port();
}

void HttpServer::run() {
  Impl& s = *impl_;
  s.accept();
  s.signals.async_wait([&s](beast::error_code error, int) {
    if (error) return;
    s.stopping = true;
    beast::error_code ignored;
    s.acceptor.close(ignored);
    s.loop.stop("the server is shutting down");
    // Streams get their error events through the io thread; give them a moment to be written.
    auto timer = std::make_shared<net::steady_timer>(s.io, std::chrono::milliseconds(500));
    timer->async_wait([&s, timer](beast::error_code) { s.io.stop(); });
  });
  s.io.run();
}

}  // namespace shardlm::serve
