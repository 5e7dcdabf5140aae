// The HTTP/1.1 server loop shared by ingress and the worker's sidecar (Boost.Beast,
// one coroutine per connection): keep-alive, a deadline on every whole request and on
// idle connections (slowloris), body and header limits answered 413/431, malformed
// requests 400, a cap on open connections, and a graceful stop that waits for requests
// already read. What to answer is the handler's business.
#pragma once

#include <atomic>
#include <boost/asio/awaitable.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "common/clock.h"
#include "common/status.h"

namespace firebreak::net {

// Where a streamed answer (Request::stream) writes: one chunk at a time.
class EventStream {
 public:
  virtual ~EventStream() = default;
  // Sends `data` as one chunk; false once the client is gone, a write took longer than
  // the read timeout, or the server is stopping: the stream should end.
  virtual boost::asio::awaitable<bool> Send(std::string data) = 0;
  virtual bool stopping() const = 0;
};
using StreamFn = std::function<boost::asio::awaitable<void>(EventStream&)>;

// A request as read from a connection, with the connection's peer address.
class Request : public boost::beast::http::request<boost::beast::http::string_body> {
 public:
  using Message = boost::beast::http::request<boost::beast::http::string_body>;
  using Message::Message;
  Request() = default;
  explicit Request(Message&& parsed) : Message(std::move(parsed)) {}

  // The TCP peer's IP address as text ("127.0.0.1", "::1"); "" when unknown (a request
  // built in a test). Never from a header: X-Forwarded-For is the client's to write.
  std::string peer;
  // Set by a handler whose answer is a stream (Server-Sent Events): the server sends the
  // handler's response as the header (chunked, the body ignored, connection: close),
  // then runs `stream` until it returns; the connection is closed after it.
  StreamFn stream;
};
using Response = boost::beast::http::response<boost::beast::http::string_body>;

struct HttpServerOptions {
  std::string name = "http";          // for logs: "ingress", "sidecar"
  std::string listen;                 // "host:port"; port 0 picks a free one
  int threads = 1;                    // I/O threads (>= 1)
  uint64_t max_body = 1024 * 1024;    // larger → 413
  size_t max_header_bytes = 16 * 1024;  // larger → 431
  std::chrono::milliseconds read_timeout{10'000};  // whole request; also the idle limit
  int max_connections = 10'000;       // past it new connections are closed at accept
  std::string max_connections_key = "max_connections";  // its config key, for the log
};

// Builds a plain answer with Server and Content-Length set.
Response MakeResponse(const Request::Message& req, boost::beast::http::status status,
                      std::string body, std::string_view content_type = "application/json");

// Thread-safe: `handle` runs on the server's threads, concurrently for different
// connections; it must not block (co_await instead).
class HttpServer {
 public:
  using Handler = std::function<boost::asio::awaitable<Response>(Request&)>;
  // Called (on a server thread) when a request's body exceeds max_body, before the 413
  // is sent: the target is known, the body is not.
  using TooLargeHook = std::function<void(std::string_view target)>;

  HttpServer(HttpServerOptions options, Handler handle, TooLargeHook too_large = {});
  ~HttpServer();  // Stop(0)
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds and starts the I/O threads. kInvalidArgument for a bad address, kUnavailable
  // when it cannot be bound.
  Status Start();
  uint16_t port() const { return port_; }
  // Closes the listener: no new connections; open ones finish their current request
  // and are closed. Safe from any thread.
  void StopAccepting();
  // Waits up to `grace` for requests already read to be answered, then stops.
  void Stop(std::chrono::milliseconds grace);
  bool stopping() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  uint16_t port_ = 0;
};

}  // namespace firebreak::net
