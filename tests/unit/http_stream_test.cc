// net::HttpServer's streamed answers (Request::stream, used by the admin API's /events):
// a client that hangs up is noticed without a write, so a browser closing a tab frees
// its stream slot within a second, not at the next 15 s ping.
#include <gtest/gtest.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <atomic>
#include <chrono>
#include <string>
#include <thread>

#include "net/http_server.h"

namespace firebreak {
namespace {

namespace asio = boost::asio;
namespace http = boost::beast::http;
using std::chrono::milliseconds;
using std::chrono::steady_clock;

TEST(HttpStreamTest, AStreamEndsSoonAfterItsClientHangsUpWithoutAnyWrite) {
  std::atomic<bool> started{false};
  std::atomic<bool> ended{false};
  net::HttpServerOptions options;
  options.listen = "127.0.0.1:0";
  options.read_timeout = milliseconds(30'000);  // far longer than the test
  net::HttpServer server(options, [&](net::Request& req) -> asio::awaitable<net::Response> {
    req.stream = [&](net::EventStream& out) -> asio::awaitable<void> {
      started = true;
      asio::steady_timer timer(co_await asio::this_coro::executor);
      // Quiet: looks once every 50 ms whether it should end, and never writes.
      while (!out.stopping()) {
        timer.expires_after(milliseconds(50));
        co_await timer.async_wait(asio::use_awaitable);
      }
      ended = true;
    };
    net::Response res = net::MakeResponse(req, http::status::ok, "", "text/event-stream");
    co_return res;
  });
  ASSERT_TRUE(server.Start().ok());

  asio::io_context io;
  asio::ip::tcp::socket client(io);
  client.connect({asio::ip::make_address("127.0.0.1"), server.port()});
  const std::string request = "GET /events HTTP/1.1\r\nHost: x\r\n\r\n";
  asio::write(client, asio::buffer(request));
  char header[64];
  client.read_some(asio::buffer(header));  // the answer's header: the stream is running
  const auto deadline = steady_clock::now() + milliseconds(2'000);
  while (!started && steady_clock::now() < deadline) std::this_thread::sleep_for(milliseconds(10));
  ASSERT_TRUE(started);
  std::this_thread::sleep_for(milliseconds(200));
  EXPECT_FALSE(ended) << "a stream whose client is still there must go on";

  const auto closed_at = steady_clock::now();
  client.close();
  while (!ended && steady_clock::now() < closed_at + milliseconds(3'000)) {
    std::this_thread::sleep_for(milliseconds(10));
  }
  EXPECT_TRUE(ended) << "the stream did not notice its client had gone";
  std::cout << "stream ended "
            << std::chrono::duration_cast<milliseconds>(steady_clock::now() - closed_at).count()
            << " ms after the client hung up\n";
  server.Stop(milliseconds(0));
}

}  // namespace
}  // namespace firebreak
