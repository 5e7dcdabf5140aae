#include "worker/url_handler.h"

#include <fcntl.h>
#include <simdjson.h>

#include <algorithm>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <optional>

#include "common/crypto.h"
#include "common/units.h"
#include "telemetry/log.h"

namespace firebreak {
namespace {

namespace http = boost::beast::http;
using tcp = boost::asio::ip::tcp;

constexpr size_t kMaxIdleConnections = 16;

#ifdef FIREBREAK_VERSION
constexpr const char* kUserAgent = "firebreak/" FIREBREAK_VERSION;
#else
constexpr const char* kUserAgent = "firebreak";
#endif

// The body's "actions" array as compact JSON, or "" when there is none: any other
// body of a 2xx answer is fine too.
std::string ActionsFromBody(std::string_view body) {
  if (body.empty()) return "";
  thread_local simdjson::dom::parser parser;
  simdjson::dom::element document;
  if (parser.parse(body.data(), body.size()).get(document) != simdjson::SUCCESS) return "";
  simdjson::dom::element actions;
  if (document.at_key("actions").get(actions) != simdjson::SUCCESS || !actions.is_array()) {
    return "";
  }
  return simdjson::minify(actions);
}

// Header values must not carry control characters (no header injection).
std::string HeaderSafe(std::string_view value) {
  std::string out(value);
  for (char& c : out) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '_';
  }
  return out;
}

}  // namespace

struct UrlHandler::Connection {
  explicit Connection(boost::asio::io_context& io) : socket(io) {}

  void Close() {
    boost::system::error_code ignored;
    socket.shutdown(tcp::socket::shutdown_both, ignored);
    socket.close(ignored);
  }

  tcp::socket socket;
  boost::beast::flat_buffer buffer;  // bytes read past a response stay here
};

struct UrlHandler::Attempt {
  explicit Attempt(boost::asio::io_context& io) : timer(io), resolver(io) {}

  UrlHandler* owner = nullptr;  // null once the handler is destroyed
  bool finished = false;        // answered: late completions are ignored
  std::chrono::milliseconds timeout{0};
  HandlerCallback done;
  boost::asio::steady_timer timer;
  tcp::resolver resolver;
  std::shared_ptr<Connection> conn;
  bool reused = false;  // `conn` came from the idle pool
  http::request<http::string_body> request;
  std::optional<http::response_parser<http::string_body>> parser;
};

Result<std::unique_ptr<UrlHandler>> UrlHandler::Create(const JobConfig& job,
                                                       boost::asio::io_context& io,
                                                       const Clock& clock) {
  Result<HttpUrl> url = ParseHttpUrl(job.handler.url);
  if (!url.ok()) return url.status();
  return std::unique_ptr<UrlHandler>(new UrlHandler(job, std::move(url).value(), io, clock));
}

UrlHandler::UrlHandler(const JobConfig& job, HttpUrl url, boost::asio::io_context& io,
                       const Clock& clock)
    : io_(io),
      clock_(clock),
      job_type_(job.type),
      url_(std::move(url)),
      max_idle_(std::clamp<size_t>(static_cast<size_t>(std::max(1, job.concurrency)), 1,
                                   kMaxIdleConnections)) {}

UrlHandler::~UrlHandler() {
  for (const std::shared_ptr<Connection>& conn : idle_) conn->Close();
  for (const std::shared_ptr<Attempt>& attempt : running_) {
    attempt->owner = nullptr;
    attempt->finished = true;
    attempt->timer.cancel();
    attempt->resolver.cancel();
    if (attempt->conn) attempt->conn->Close();
    Answer(std::move(attempt->done), {HandlerResult::Kind::kFailed, "handler stopped", {}, {}});
  }
}

void UrlHandler::Run(HandlerJob job, std::chrono::milliseconds timeout, HandlerCallback done) {
  if (shutting_down_) {
    Answer(std::move(done), {HandlerResult::Kind::kFailed, "handler is shut down", {}, {}});
    return;
  }
  auto attempt = std::make_shared<Attempt>(io_);
  attempt->owner = this;
  attempt->timeout = timeout;
  attempt->done = std::move(done);
  http::request<http::string_body>& request = attempt->request;
  request.method(http::verb::post);
  request.target(url_.target);
  request.version(11);
  request.set(http::field::host, url_.host_header);
  request.set(http::field::user_agent, kUserAgent);
  request.set(http::field::content_type, "application/json");
  request.set("X-Firebreak-Job-Id", HeaderSafe(job.id));
  // The attempt's span context: the bot's own spans (and its calls back through the
  // sidecar) continue the trace.
  if (IsValidTraceparent(job.traceparent)) request.set("traceparent", job.traceparent);
  request.body() = std::move(job.envelope_json);
  request.prepare_payload();
  running_.insert(attempt);

  attempt->timer.expires_after(timeout);
  attempt->timer.async_wait([attempt](const boost::system::error_code& ec) {
    if (ec || attempt->finished || attempt->owner == nullptr) return;
    attempt->owner->OnTimeout(attempt);
  });
  if (!idle_.empty()) {
    attempt->conn = std::move(idle_.back());
    idle_.pop_back();
    attempt->reused = true;
    Send(attempt);
  } else {
    Connect(attempt);
  }
}

void UrlHandler::Shutdown() {
  shutting_down_ = true;
  for (const std::shared_ptr<Connection>& conn : idle_) conn->Close();
  idle_.clear();
}

void UrlHandler::Answer(HandlerCallback done, HandlerResult result) {
  boost::asio::post(io_, [done = std::move(done), result = std::move(result)]() mutable {
    done(std::move(result));
  });
}

void UrlHandler::Connect(const std::shared_ptr<Attempt>& attempt) {
  attempt->reused = false;
  attempt->conn = std::make_shared<Connection>(io_);
  boost::system::error_code ec;
  boost::asio::ip::address address = boost::asio::ip::make_address(url_.host, ec);
  if (!ec) {
    attempt->conn->socket.async_connect(tcp::endpoint(address, url_.port),
                                        [attempt](const boost::system::error_code& error) {
                                          if (attempt->finished || attempt->owner == nullptr)
                                            return;
                                          attempt->owner->OnConnected(attempt, error);
                                        });
    return;
  }
  attempt->resolver.async_resolve(
      url_.host, std::to_string(url_.port),
      [attempt](const boost::system::error_code& error, const tcp::resolver::results_type& found) {
        UrlHandler* self = attempt->owner;
        if (attempt->finished || self == nullptr) return;
        if (error) {
          self->Finish(attempt, {HandlerResult::Kind::kFailed,
                                 "resolve " + self->url_.host + ": " + error.message(),
                                 {},
                                 {}});
          return;
        }
        boost::asio::async_connect(
            attempt->conn->socket, found,
            [attempt](const boost::system::error_code& connect_error, const tcp::endpoint&) {
              if (attempt->finished || attempt->owner == nullptr) return;
              attempt->owner->OnConnected(attempt, connect_error);
            });
      });
}

void UrlHandler::OnConnected(const std::shared_ptr<Attempt>& attempt,
                             const boost::system::error_code& ec) {
  if (ec) {
    Finish(attempt, {HandlerResult::Kind::kFailed, "connect: " + ec.message(), {}, {}});
    return;
  }
  boost::system::error_code ignored;
  attempt->conn->socket.set_option(tcp::no_delay(true), ignored);
  // Asio does not open sockets O_CLOEXEC; handler processes must not inherit them.
  fcntl(attempt->conn->socket.native_handle(), F_SETFD, FD_CLOEXEC);
  Send(attempt);
}

void UrlHandler::Send(const std::shared_ptr<Attempt>& attempt) {
  attempt->parser.emplace();
  attempt->parser->body_limit(kMaxResponseBody);
  http::async_write(attempt->conn->socket, attempt->request,
                    [attempt](const boost::system::error_code& ec, size_t) {
                      if (attempt->finished || attempt->owner == nullptr) return;
                      if (ec) {
                        attempt->owner->OnExchangeError(attempt, "write", ec);
                        return;
                      }
                      http::async_read(
                          attempt->conn->socket, attempt->conn->buffer, *attempt->parser,
                          [attempt](const boost::system::error_code& read_error, size_t) {
                            if (attempt->finished || attempt->owner == nullptr) return;
                            if (read_error) {
                              attempt->owner->OnExchangeError(attempt, "read", read_error);
                              return;
                            }
                            attempt->owner->OnResponse(attempt);
                          });
                    });
}

void UrlHandler::OnExchangeError(const std::shared_ptr<Attempt>& attempt, const char* step,
                                 const boost::system::error_code& ec) {
  bool nothing_received = !attempt->parser->got_some() && attempt->conn->buffer.size() == 0;
  attempt->conn->Close();
  if (attempt->reused && nothing_received) {
    // The server closed the pooled connection while it sat idle; the request never
    // reached it, so sending it again on a new connection is safe.
    log::Debug("handler connection was stale, reconnecting",
               {{"job_type", job_type_}, {"error", ec.message()}});
    Connect(attempt);
    return;
  }
  std::string error = ec == http::error::body_limit ? "response body larger than 1 MiB"
                                                    : std::string(step) + ": " + ec.message();
  Finish(attempt, {HandlerResult::Kind::kFailed, std::move(error), {}, {}});
}

void UrlHandler::OnResponse(const std::shared_ptr<Attempt>& attempt) {
  http::response<http::string_body> response = attempt->parser->release();
  std::shared_ptr<Connection> conn = std::move(attempt->conn);
  unsigned status = response.result_int();
  bool reusable = status >= 200 && response.keep_alive() && conn->buffer.size() == 0 &&
                  !shutting_down_ && idle_.size() < max_idle_;
  if (reusable) {
    idle_.push_back(std::move(conn));
  } else {
    conn->Close();
  }

  HandlerResult result;
  std::string status_text = "HTTP " + std::to_string(status);
  if (status >= 200 && status < 300) {
    result.actions_json = ActionsFromBody(response.body());
  } else if (status == 408 || status == 429 || (status >= 500 && status < 600)) {
    result.kind = HandlerResult::Kind::kFailed;
    result.error = std::move(status_text);
    std::string_view retry_after = response[http::field::retry_after];
    if (!retry_after.empty()) result.retry_after = ParseRetryAfter(retry_after, clock_.NowMs());
  } else if (status >= 400 && status < 500) {
    result.kind = HandlerResult::Kind::kRejected;
    result.error = std::move(status_text);
  } else {
    result.kind = HandlerResult::Kind::kFailed;  // 1xx/3xx: not an answer we understand
    result.error = std::move(status_text);
  }
  Finish(attempt, std::move(result));
}

void UrlHandler::OnTimeout(const std::shared_ptr<Attempt>& attempt) {
  Finish(attempt, {HandlerResult::Kind::kTimedOut,
                   "timed out after " + FormatDuration(attempt->timeout),
                   {},
                   {}});
}

void UrlHandler::Finish(const std::shared_ptr<Attempt>& attempt, HandlerResult result) {
  attempt->finished = true;
  attempt->timer.cancel();
  attempt->resolver.cancel();
  // Whatever connection the attempt still holds is mid-exchange or broken: never reused.
  if (attempt->conn) attempt->conn->Close();
  running_.erase(attempt);
  Answer(std::move(attempt->done), std::move(result));
}

}  // namespace firebreak
