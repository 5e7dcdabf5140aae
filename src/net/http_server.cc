#include "net/http_server.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <sys/socket.h>

#include <cerrno>

#include "common/json_string.h"
#include "config/config.h"
#include "telemetry/log.h"

namespace firebreak::net {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
constexpr auto kUseTuple = asio::as_tuple(asio::use_awaitable);

Response MakeResponse(const Request::Message& req, http::status status, std::string body,
                      std::string_view content_type) {
  Response res{status, req.version()};
  res.set(http::field::server, "firebreak");
  if (!body.empty()) res.set(http::field::content_type, content_type);
  res.body() = std::move(body);
  res.prepare_payload();
  return res;
}

struct HttpServer::Impl {
  Impl(HttpServerOptions o, Handler h, TooLargeHook t)
      : options(std::move(o)),
        handle(std::move(h)),
        too_large(std::move(t)),
        io(std::max(1, options.threads)),
        accept_strand(asio::make_strand(io)),
        acceptor(io) {}

  asio::awaitable<void> Accept();
  asio::awaitable<void> Session(tcp::socket socket);
  // Sends `res` as the header of a chunked answer and runs `body` to write its chunks.
  asio::awaitable<void> Stream(beast::tcp_stream& stream, Response& res, const StreamFn& body);

  const HttpServerOptions options;
  const Handler handle;
  const TooLargeHook too_large;
  asio::io_context io;
  // The accept loop and StopAccepting's close run here, one at a time: closing the
  // acceptor on one io thread while the loop starts its next accept on another raced on
  // the acceptor's reactor state (UBSan: a null descriptor_state in deregister_descriptor).
  asio::strand<asio::io_context::executor_type> accept_strand;
  tcp::acceptor acceptor;
  std::vector<std::thread> threads;
  std::atomic<bool> stopping{false};
  // Requests read but not yet answered: Stop waits for these, not for idle keep-alive
  // connections.
  std::atomic<int> requests_in_progress{0};
  std::atomic<int> open_connections{0};
};

asio::awaitable<void> HttpServer::Impl::Accept() {
  asio::steady_timer pause(acceptor.get_executor());
  auto last_refusal_log = std::chrono::steady_clock::time_point{};
  while (!stopping) {
    // Each connection gets a strand of its own. Several threads run the io_context, and a
    // beast stream's timeout fires as its own handler: without a strand it can run on one
    // thread while the read it times out completes on another (the two race on the
    // stream's state: a flood of connections timing out together crashed the server).
    auto [ec, socket] =
        co_await acceptor.async_accept(asio::make_strand(acceptor.get_executor()), kUseTuple);
    if (ec) {
      if (ec == asio::error::operation_aborted || stopping) break;
      log::Warn("accept failed", {{"server", options.name}, {"error", ec.message()}});
      // Out of descriptors (EMFILE/ENFILE) fails every accept at once: pause instead of
      // spinning, so sessions can finish and free some.
      pause.expires_after(std::chrono::milliseconds(100));
      co_await pause.async_wait(kUseTuple);
      continue;
    }
    if (open_connections.load() >= options.max_connections) {
      // A flood of idle or half-open connections must not take the process's descriptors
      // (and memory) from everyone: past the limit, new ones are closed at once; the
      // held ones time out after read_timeout.
      auto now = std::chrono::steady_clock::now();
      if (now - last_refusal_log >= std::chrono::seconds(1)) {
        last_refusal_log = now;
        log::Warn("connection refused: " + options.max_connections_key + " reached",
                  {{"server", options.name}, {"max_connections", options.max_connections}});
      }
      socket.close(ec);
      continue;
    }
    socket.set_option(tcp::no_delay(true), ec);
    ++open_connections;
    const auto strand = socket.get_executor();
    asio::co_spawn(strand, Session(tcp::socket(std::move(socket))),
                   [this](std::exception_ptr e) {
                     --open_connections;
                     if (!e) return;
                     try {
                       std::rethrow_exception(e);
                     } catch (const std::exception& ex) {
                       log::Error("session failed", {{"server", options.name}, {"error", ex.what()}});
                     }
                   });
  }
}

asio::awaitable<void> HttpServer::Impl::Session(tcp::socket socket) {
  beast::error_code peer_error;
  const tcp::endpoint peer_endpoint = socket.remote_endpoint(peer_error);
  const std::string peer = peer_error ? "" : peer_endpoint.address().to_string();
  beast::tcp_stream stream(std::move(socket));
  beast::flat_buffer buffer;
  for (;;) {
    http::request_parser<http::string_body> parser;
    parser.body_limit(options.max_body);
    parser.header_limit(static_cast<std::uint32_t>(options.max_header_bytes));
    // read_timeout bounds the whole request, and an idle keep-alive connection too.
    stream.expires_after(options.read_timeout);
    auto [ec, bytes] = co_await http::async_read(stream, buffer, parser, kUseTuple);
    (void)bytes;
    if (ec) {
      Response res;
      if (ec == http::error::body_limit) {
        res = MakeResponse(parser.get(), http::status::payload_too_large,
                           ErrorJson("body too large"));
        if (too_large) too_large(parser.get().target());
      } else if (ec == http::error::header_limit) {
        res = MakeResponse(parser.get(), http::status::request_header_fields_too_large,
                           ErrorJson("headers too large"));
      } else if (ec.category() == http::make_error_code(http::error::bad_target).category() &&
                 ec != http::error::end_of_stream && ec != http::error::partial_message) {
        res = MakeResponse(parser.get(), http::status::bad_request, ErrorJson("malformed request"));
      } else {
        break;  // closed, reset or timed out: nothing to answer
      }
      res.keep_alive(false);
      stream.expires_after(std::chrono::seconds(5));
      co_await http::async_write(stream, res, kUseTuple);
      break;
    }
    Request req(parser.release());
    req.peer = peer;
    ++requests_in_progress;
    Response res = co_await handle(req);
    if (req.stream) {
      co_await Stream(stream, res, req.stream);
      --requests_in_progress;
      break;
    }
    bool keep_alive = req.keep_alive() && !stopping;
    res.keep_alive(keep_alive);
    stream.expires_after(options.read_timeout);
    auto [wec, wbytes] = co_await http::async_write(stream, res, kUseTuple);
    (void)wbytes;
    --requests_in_progress;
    if (wec || !keep_alive) break;
  }
  beast::error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
}

namespace {

// The connection's side of a streamed answer.
class ChunkWriter final : public EventStream {
 public:
  ChunkWriter(beast::tcp_stream& stream, const std::atomic<bool>& stopping,
              std::chrono::milliseconds write_timeout)
      : stream_(stream), stopping_(stopping), write_timeout_(write_timeout) {}

  asio::awaitable<bool> Send(std::string data) override {
    if (broken_ || stopping_.load()) co_return false;
    stream_.expires_after(write_timeout_);  // a reader that stops reading is dropped
    auto [ec, bytes] =
        co_await asio::async_write(stream_, http::make_chunk(asio::buffer(data)), kUseTuple);
    (void)bytes;
    broken_ = static_cast<bool>(ec);
    co_return !broken_ && !stopping_.load();
  }
  bool stopping() const override { return broken_ || stopping_.load() || PeerClosed(); }

 private:
  // Whether the client hung up, asked without blocking: a quiet stream writes nothing,
  // and only a write would otherwise find out (an EventSource never sends anything after
  // its request, so any byte waiting means it is still there).
  bool PeerClosed() const {
    char byte;
    const ssize_t n = ::recv(stream_.socket().native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n == 0) return true;  // orderly shutdown (FIN)
    return n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR;  // reset
  }

  beast::tcp_stream& stream_;
  const std::atomic<bool>& stopping_;
  const std::chrono::milliseconds write_timeout_;
  bool broken_ = false;
};

}  // namespace

asio::awaitable<void> HttpServer::Impl::Stream(beast::tcp_stream& stream, Response& res,
                                               const StreamFn& body) {
  res.body().clear();
  res.erase(http::field::content_length);
  res.chunked(true);
  res.keep_alive(false);
  http::response_serializer<http::string_body> header(res);
  stream.expires_after(options.read_timeout);
  auto [ec, bytes] = co_await http::async_write_header(stream, header, kUseTuple);
  (void)bytes;
  if (ec) co_return;
  ChunkWriter writer(stream, stopping, options.read_timeout);
  co_await body(writer);
  if (writer.stopping() && !stopping.load()) co_return;  // the client is gone
  stream.expires_after(std::chrono::seconds(1));
  co_await asio::async_write(stream, http::make_chunk_last(), kUseTuple);
}

HttpServer::HttpServer(HttpServerOptions options, Handler handle, TooLargeHook too_large)
    : impl_(std::make_unique<Impl>(std::move(options), std::move(handle), std::move(too_large))) {}

HttpServer::~HttpServer() { Stop(std::chrono::milliseconds(0)); }

Status HttpServer::Start() {
  const HttpServerOptions& options = impl_->options;
  auto address = ParseListenAddress(options.listen, /*allow_port_zero=*/true);
  if (!address.ok()) return address.status();
  beast::error_code ec;
  auto ip = asio::ip::make_address(address->first == "localhost" ? "127.0.0.1" : address->first, ec);
  if (ec) return InvalidArgument(options.listen + ": bad address " + address->first);
  tcp::endpoint endpoint(ip, address->second);
  tcp::acceptor& acceptor = impl_->acceptor;
  acceptor.open(endpoint.protocol(), ec);
  if (!ec) acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor.bind(endpoint, ec);
  if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return Unavailable("cannot listen on " + options.listen + ": " + ec.message());
  port_ = acceptor.local_endpoint().port();
  asio::co_spawn(impl_->accept_strand, impl_->Accept(), asio::detached);
  for (int i = 0; i < std::max(1, options.threads); ++i) {
    impl_->threads.emplace_back([this] { impl_->io.run(); });
  }
  return Status::Ok();
}

void HttpServer::StopAccepting() {
  impl_->stopping = true;
  asio::post(impl_->accept_strand, [this] {
    beast::error_code ec;
    impl_->acceptor.close(ec);
  });
}

bool HttpServer::stopping() const { return impl_->stopping.load(); }

void HttpServer::Stop(std::chrono::milliseconds grace) {
  if (impl_->threads.empty()) return;
  StopAccepting();
  auto deadline = std::chrono::steady_clock::now() + grace;
  while (impl_->requests_in_progress > 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  impl_->io.stop();
  for (auto& t : impl_->threads) t.join();
  impl_->threads.clear();
}

}  // namespace firebreak::net
