// Url mode: a small HTTP/1.1 server (Boost.Beast, a thread per connection) that answers
// POSTed envelopes. Kept in its own file: it is the only part that needs Beast.
#include <sys/socket.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cmath>
#include <condition_variable>
#include <set>
#include <thread>

#include "firebreak/sdk.h"

namespace firebreak {

namespace asio = boost::asio;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;

struct Bot::Server {
  asio::io_context io;
  tcp::acceptor acceptor{io};
  std::mutex mutex;
  std::set<std::shared_ptr<tcp::socket>> open;  // closed by stop()
  std::condition_variable none_open;            // serve() returns only after the last one
  bool stopping = false;
};

namespace {

http::response<http::string_body> Answer(const Bot& bot,
                                         const http::request<http::string_body>& req) {
  http::response<http::string_body> res;
  res.version(req.version());
  res.keep_alive(req.keep_alive());
  res.set(http::field::content_type, "application/json");
  auto finish = [&](http::status status, const Json& body) {
    res.result(status);
    res.body() = body.dump(-1, ' ', false, Json::error_handler_t::replace);
    res.prepare_payload();
    return res;
  };
  if (req.method() != http::verb::post) {
    return finish(http::status::method_not_allowed, {{"error", "POST an envelope"}});
  }
  Json envelope = Json::parse(req.body(), nullptr, false);
  if (envelope.is_discarded())
    return finish(http::status::bad_request, {{"error", "the body is not JSON"}});
  Json result = bot.handle(envelope);
  if (result.contains("results") || result.value("ok", false)) {
    Json body = Json::object();
    for (const char* key : {"actions", "enqueue", "results"}) {
      if (result.contains(key)) body[key] = result[key];
    }
    return finish(http::status::ok, body);
  }
  if (result.value("retry", true)) {
    if (result.contains("retry_after")) {
      const double after = result["retry_after"].get<double>();
      res.set(http::field::retry_after,
              std::to_string(std::max(1, static_cast<int>(std::ceil(after)))));
    }
    return finish(http::status::service_unavailable, {{"error", result["error"]}});
  }
  return finish(http::status::unprocessable_entity, {{"error", result["error"]}});
}

void Serve(const Bot& bot, const std::shared_ptr<tcp::socket>& socket) {
  boost::beast::flat_buffer buffer;
  boost::system::error_code ec;
  for (;;) {
    http::request_parser<http::string_body> parser;
    parser.body_limit(64 * 1024 * 1024);
    http::read(*socket, buffer, parser, ec);
    if (ec) return;
    const auto& req = parser.get();
    http::write(*socket, Answer(bot, req), ec);
    if (ec || !req.keep_alive()) return;
  }
}

}  // namespace

void Bot::serve(uint16_t port, const std::string& host,
                const std::function<void(uint16_t)>& ready) {
  auto server = std::make_shared<Server>();
  const tcp::endpoint endpoint(asio::ip::make_address(host), port);
  server->acceptor.open(endpoint.protocol());
  server->acceptor.set_option(asio::socket_base::reuse_address(true));
  server->acceptor.bind(endpoint);
  server->acceptor.listen();
  {
    std::lock_guard lock(server_mutex_);
    server_ = server;
  }
  if (ready) ready(server->acceptor.local_endpoint().port());
  for (;;) {
    auto socket = std::make_shared<tcp::socket>(server->io);
    boost::system::error_code ec;
    server->acceptor.accept(*socket, ec);
    {
      std::lock_guard lock(server->mutex);
      if (server->stopping) break;
      if (ec) continue;
      server->open.insert(socket);
    }
    std::thread([this, server, socket] {
      Serve(*this, socket);
      std::lock_guard lock(server->mutex);
      server->open.erase(socket);
      if (server->open.empty()) server->none_open.notify_all();
    }).detach();
  }
  {
    // The connections' threads use this Bot: wait for them before returning.
    std::unique_lock lock(server->mutex);
    server->none_open.wait(lock, [&] { return server->open.empty(); });
  }
  std::lock_guard lock(server_mutex_);
  server_.reset();
}

void Bot::stop() {
  std::shared_ptr<Server> server;
  {
    std::lock_guard lock(server_mutex_);
    server = server_;
  }
  if (!server) return;
  std::lock_guard lock(server->mutex);
  server->stopping = true;
  boost::system::error_code ec;
  server->acceptor.cancel(ec);
  // A blocking accept() is not woken by cancel() on every platform: shutting the socket
  // down is, and open connections end the same way.
  ::shutdown(server->acceptor.native_handle(), SHUT_RDWR);
  for (const auto& socket : server->open) socket->shutdown(tcp::socket::shutdown_both, ec);
}

}  // namespace firebreak
