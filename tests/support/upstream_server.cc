#include "support/upstream_server.h"

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <thread>

#include <sys/socket.h>

#include <cerrno>

namespace firebreak::testing {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
constexpr auto kUseTuple = asio::as_tuple(asio::use_awaitable);

std::string UpstreamRequest::Header(const std::string& lower_name) const {
  auto it = headers.find(lower_name);
  return it == headers.end() ? "" : it->second;
}

struct UpstreamServer::Impl {
  explicit Impl(UpstreamServer& o) : owner(o), acceptor(io) {}

  asio::awaitable<void> Accept() {
    for (;;) {
      auto [ec, socket] = co_await acceptor.async_accept(kUseTuple);
      if (ec) co_return;
      owner.connections_.fetch_add(1);
      asio::co_spawn(acceptor.get_executor(), Session(std::move(socket)), asio::detached);
    }
  }

  asio::awaitable<void> Session(tcp::socket socket) {
    beast::flat_buffer buffer;
    for (;;) {
      http::request<http::string_body> req;
      auto [ec, n] = co_await http::async_read(socket, buffer, req, kUseTuple);
      (void)n;
      if (ec) co_return;
      UpstreamRequest seen;
      seen.method = std::string(req.method_string());
      seen.target = std::string(req.target());
      for (const auto& field : req) {
        std::string name(field.name_string());
        std::transform(name.begin(), name.end(), name.begin(),
                       [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
        seen.headers[name] = std::string(field.value());
      }
      seen.body = req.body();
      seen.at = std::chrono::steady_clock::now();
      Behavior script;
      {
        std::lock_guard lock(mu);
        log.push_back(seen);
        script = behavior;
      }
      owner.requests_.fetch_add(1);
      int now_in_flight = owner.in_flight_.fetch_add(1) + 1;
      int peak = owner.peak_in_flight_.load();
      while (now_in_flight > peak && !owner.peak_in_flight_.compare_exchange_weak(peak, now_in_flight)) {
      }
      UpstreamReply reply = script ? script(seen) : UpstreamReply{};

      if (reply.hang) {
        // Readable means the client closed (or sent more, which a waiting client won't).
        auto [wait_ec] = co_await socket.async_wait(tcp::socket::wait_read, kUseTuple);
        (void)wait_ec;
        owner.abandoned_.fetch_add(1);
        char peek = 0;
        if (::recv(socket.native_handle(), &peek, 1, MSG_PEEK | MSG_DONTWAIT) < 0 &&
            errno == ECONNRESET) {
          owner.aborted_.fetch_add(1);
        }
        owner.in_flight_.fetch_sub(1);
        co_return;
      }
      if (reply.delay.count() > 0) {
        asio::steady_timer timer(socket.get_executor());
        timer.expires_after(reply.delay);
        co_await timer.async_wait(kUseTuple);
      }
      if (reply.drop) {
        owner.in_flight_.fetch_sub(1);
        beast::error_code ignored;
        socket.shutdown(tcp::socket::shutdown_both, ignored);
        co_return;
      }
      http::response<http::string_body> res{static_cast<http::status>(reply.status), req.version()};
      res.set(http::field::server, "upstream-sim");
      res.set(http::field::content_type, "application/json");
      for (const auto& [name, value] : reply.headers) res.set(name, value);
      res.body() = reply.body;
      res.keep_alive(req.keep_alive());
      res.prepare_payload();
      owner.in_flight_.fetch_sub(1);
      auto [wec, wn] = co_await http::async_write(socket, res, kUseTuple);
      (void)wn;
      if (wec || !req.keep_alive()) co_return;
    }
  }

  UpstreamServer& owner;
  asio::io_context io;
  tcp::acceptor acceptor;
  std::vector<std::thread> threads;
  mutable std::mutex mu;
  Behavior behavior;                  // guarded by mu
  std::vector<UpstreamRequest> log;  // guarded by mu
};

UpstreamServer::UpstreamServer(Behavior behavior, int threads)
    : impl_(std::make_unique<Impl>(*this)) {
  impl_->behavior = std::move(behavior);
  tcp::endpoint endpoint(asio::ip::make_address("127.0.0.1"), 0);
  impl_->acceptor.open(endpoint.protocol());
  impl_->acceptor.set_option(asio::socket_base::reuse_address(true));
  impl_->acceptor.bind(endpoint);
  impl_->acceptor.listen(asio::socket_base::max_listen_connections);
  port_ = impl_->acceptor.local_endpoint().port();
  asio::co_spawn(impl_->io, impl_->Accept(), asio::detached);
  for (int i = 0; i < std::max(1, threads); ++i) {
    impl_->threads.emplace_back([this] { impl_->io.run(); });
  }
}

UpstreamServer::~UpstreamServer() {
  impl_->io.stop();
  for (std::thread& t : impl_->threads) t.join();
}

std::string UpstreamServer::Url() const { return "http://127.0.0.1:" + std::to_string(port_); }

void UpstreamServer::SetBehavior(Behavior behavior) {
  std::lock_guard lock(impl_->mu);
  impl_->behavior = std::move(behavior);
}

std::vector<UpstreamRequest> UpstreamServer::Requests() const {
  std::lock_guard lock(impl_->mu);
  return impl_->log;
}

void UpstreamServer::ResetStats() {
  std::lock_guard lock(impl_->mu);
  impl_->log.clear();
  requests_ = 0;
  connections_ = 0;
  peak_in_flight_ = in_flight_.load();
  abandoned_ = 0;
  aborted_ = 0;
}

}  // namespace firebreak::testing
