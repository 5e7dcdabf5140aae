#include "cli/http_client.h"

#include <strings.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/version.hpp>
#include <optional>

#include "common/http_util.h"

namespace firebreak {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

std::string HttpResponse::Header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (k.size() == name.size() && strncasecmp(k.data(), name.data(), k.size()) == 0) return v;
  }
  return "";
}

struct HttpConnection::Impl {
  Impl(std::string h, uint16_t p) : host(std::move(h)), port(p) {}
  std::string host;
  uint16_t port;
  asio::io_context io;
  std::optional<beast::tcp_stream> stream;
  beast::flat_buffer buffer;

  Status Connect(std::chrono::milliseconds timeout) {
    stream.emplace(io);
    buffer.clear();
    tcp::resolver resolver(io);
    beast::error_code ec;
    auto results = resolver.resolve(host, std::to_string(port), ec);
    if (ec) return Unavailable("resolve " + host + ": " + ec.message());
    stream->expires_after(timeout);
    stream->connect(results, ec);
    if (ec)
      return Unavailable("connect " + host + ":" + std::to_string(port) + ": " + ec.message());
    stream->socket().set_option(tcp::no_delay(true), ec);
    return Status::Ok();
  }
};

HttpConnection::HttpConnection(std::string host, uint16_t port)
    : impl_(std::make_unique<Impl>(std::move(host), port)) {}
HttpConnection::~HttpConnection() = default;

Result<HttpResponse> HttpConnection::Send(
    const std::string& method, const std::string& target,
    const std::vector<std::pair<std::string, std::string>>& headers, const std::string& body,
    std::chrono::milliseconds timeout) {
  http::request<http::string_body> req{http::string_to_verb(method), target, 11};
  req.set(http::field::host, impl_->host + ":" + std::to_string(impl_->port));
  req.set(http::field::user_agent, "firebreak-cli");
  for (const auto& [k, v] : headers) req.set(k, v);
  req.body() = body;
  req.keep_alive(true);
  req.prepare_payload();

  for (int tries = 0; tries < 2; ++tries) {
    bool fresh = false;
    if (!impl_->stream) {
      Status st = impl_->Connect(timeout);
      if (!st.ok()) return st;
      fresh = true;
    }
    beast::error_code ec;
    impl_->stream->expires_after(timeout);
    http::write(*impl_->stream, req, ec);
    http::response_parser<http::string_body> parser;
    parser.body_limit(64 * 1024 * 1024);
    if (!ec) http::read(*impl_->stream, impl_->buffer, parser, ec);
    if (ec) {
      impl_->stream.reset();
      bool stale =
          !fresh && (ec == http::error::end_of_stream || ec == asio::error::eof ||
                     ec == asio::error::connection_reset || ec == asio::error::broken_pipe);
      if (stale) continue;  // the server closed an idle keep-alive connection: once more
      if (ec == beast::error::timeout) return Status(StatusCode::kDeadlineExceeded, "timeout");
      return Unavailable(ec.message());
    }
    auto& res = parser.get();
    HttpResponse out;
    out.status = static_cast<int>(res.result_int());
    for (const auto& field : res) {
      out.headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
    }
    out.body = std::move(res.body());
    if (!res.keep_alive()) impl_->stream.reset();
    return out;
  }
  return Unavailable("connection closed by server");
}

Result<HttpResponse> HttpCall(const HttpRequest& request) {
  auto url = ParseHttpUrl(request.url, "url");
  if (!url.ok()) return url.status();
  HttpConnection connection(url->host, url->port);
  return connection.Send(request.method, url->target, request.headers, request.body,
                         request.timeout);
}

}  // namespace firebreak
