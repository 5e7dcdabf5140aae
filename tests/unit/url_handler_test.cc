#include "worker/url_handler.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/clock.h"
#include "common/http_util.h"
#include "support/https_server.h"
#include "worker/handler.h"

namespace firebreak {
namespace {

namespace http = boost::beast::http;
using tcp = boost::asio::ip::tcp;
using std::chrono::milliseconds;
using ::testing::HasSubstr;
using Kind = HandlerResult::Kind;

// What the test server answers to one request.
struct CannedResponse {
  unsigned status = 200;
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  milliseconds delay{0};
  bool close_after = false;   // close after answering, without saying so (stale keep-alive)
  bool drop_request = false;  // close right after reading the request, no answer
};

struct SeenRequest {
  std::string method;
  std::string target;
  std::string host;
  std::string content_type;
  std::string job_id;
  std::string body;
  std::string traceparent;
};

// A scripted HTTP/1.1 server on 127.0.0.1, port 0, driven by the test's io_context.
class TestHttpServer {
 public:
  explicit TestHttpServer(boost::asio::io_context& io)
      : acceptor_(io, tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), 0)) {
    Accept();
  }

  uint16_t port() const { return acceptor_.local_endpoint().port(); }
  std::string Url(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(port()) + path;
  }

  std::function<CannedResponse(const SeenRequest&)> respond = [](const SeenRequest&) {
    return CannedResponse{};
  };
  int connections_accepted = 0;
  int connections_closed_by_client = 0;  // read end of stream (or an error) from the client
  std::vector<SeenRequest> requests;

 private:
  struct Session : std::enable_shared_from_this<Session> {
    Session(tcp::socket s, TestHttpServer* owner)
        : socket(std::move(s)), timer(socket.get_executor()), server(owner) {}

    void Read() {
      request = {};
      http::async_read(socket, buffer, request,
                       [self = shared_from_this()](boost::system::error_code ec, size_t) {
                         if (ec) {
                           ++self->server->connections_closed_by_client;
                           return;
                         }
                         self->OnRequest();
                       });
    }

    void OnRequest() {
      SeenRequest seen{std::string(request.method_string()),
                       std::string(request.target()),
                       std::string(request[http::field::host]),
                       std::string(request[http::field::content_type]),
                       std::string(request["X-Firebreak-Job-Id"]),
                       request.body(),
                       std::string(request["traceparent"])};
      server->requests.push_back(seen);
      CannedResponse canned = server->respond(seen);
      if (canned.drop_request) {
        boost::system::error_code ignored;
        socket.close(ignored);
        return;
      }
      response = {};
      response.result(canned.status);
      response.version(11);
      for (const auto& [name, value] : canned.headers) response.set(name, value);
      response.body() = canned.body;
      response.prepare_payload();
      bool close_after = canned.close_after;
      if (canned.delay.count() > 0) {
        // Readable while the answer waits: the client closed the connection (gave up).
        delaying = true;
        socket.async_wait(tcp::socket::wait_read,
                          [self = shared_from_this()](boost::system::error_code ec) {
                            if (ec || !self->delaying) return;
                            self->delaying = false;
                            self->timer.cancel();
                            ++self->server->connections_closed_by_client;
                            boost::system::error_code ignored;
                            self->socket.close(ignored);
                          });
        timer.expires_after(canned.delay);
        timer.async_wait([self = shared_from_this(), close_after](boost::system::error_code ec) {
          if (ec || !self->delaying) return;
          self->delaying = false;
          self->socket.cancel();  // the wait for a close
          self->Write(close_after);
        });
      } else {
        Write(close_after);
      }
    }

    void Write(bool close_after) {
      http::async_write(
          socket, response,
          [self = shared_from_this(), close_after](boost::system::error_code ec, size_t) {
            if (ec) return;
            if (close_after) {
              boost::system::error_code ignored;
              self->socket.shutdown(tcp::socket::shutdown_both, ignored);
              self->socket.close(ignored);
              return;
            }
            self->Read();
          });
    }

    tcp::socket socket;
    boost::asio::steady_timer timer;
    bool delaying = false;  // an answer waits on `timer`
    TestHttpServer* server;
    boost::beast::flat_buffer buffer;
    http::request<http::string_body> request;
    http::response<http::string_body> response;
  };

  void Accept() {
    acceptor_.async_accept([this](boost::system::error_code ec, tcp::socket socket) {
      if (ec) return;
      ++connections_accepted;
      std::make_shared<Session>(std::move(socket), this)->Read();
      Accept();
    });
  }

  tcp::acceptor acceptor_;
};

// A fresh directory, removed with its contents.
class TempDirectory {
 public:
  TempDirectory() {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "url_handler_test.XXXXXX").string();
    if (mkdtemp(pattern.data()) == nullptr) std::abort();
    path_ = pattern;
  }
  ~TempDirectory() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  TempDirectory(const TempDirectory&) = delete;
  TempDirectory& operator=(const TempDirectory&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

class UrlHandlerTest : public ::testing::Test {
 protected:
  std::unique_ptr<Handler> Make(const std::string& url, int concurrency = 4) {
    JobConfig job;
    job.type = "test.url";
    job.concurrency = concurrency;
    job.handler.url = url;
    Result<std::unique_ptr<Handler>> handler = MakeHandler(job, "127.0.0.1:8081", io_);
    EXPECT_TRUE(handler.ok()) << handler.status().ToString();
    return handler.ok() ? std::move(handler).value() : nullptr;
  }

  bool RunUntil(const std::function<bool()>& done, milliseconds limit = milliseconds(5000)) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    while (!done()) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      if (io_.stopped()) io_.restart();
      if (io_.run_one_for(milliseconds(10)) == 0) usleep(1000);
    }
    return true;
  }

  static std::string Envelope(const std::string& id) {
    return R"({"id":")" + id + R"(","type":"test.url","attempt":1,"payload":{"text":"hi"}})";
  }

  // One Run, checking the callback comes later (not inline) and exactly once.
  HandlerResult RunOne(Handler& handler, const std::string& id,
                       milliseconds timeout = milliseconds(3000)) {
    int calls = 0;
    bool returned = false;
    HandlerResult result;
    handler.Run({id, "", Envelope(id)}, timeout, [&](HandlerResult r) {
      EXPECT_TRUE(returned) << "callback ran inside Run";
      ++calls;
      result = std::move(r);
    });
    returned = true;
    EXPECT_TRUE(RunUntil([&] { return calls > 0; }, timeout + milliseconds(3000)));
    RunUntil([] { return false; }, milliseconds(20));  // a second call would show up here
    EXPECT_EQ(calls, 1);
    return result;
  }

  boost::asio::io_context io_;  // first member: destroyed last
};

TEST(HttpUrlTest, ParsesHttpUrls) {
  Result<HttpUrl> url = ParseHttpUrl("http://example.com");
  ASSERT_TRUE(url.ok());
  EXPECT_EQ(url->host, "example.com");
  EXPECT_EQ(url->port, 80);
  EXPECT_EQ(url->host_header, "example.com");
  EXPECT_EQ(url->target, "/");

  url = ParseHttpUrl("http://127.0.0.1:8080/a/b?c=d");
  ASSERT_TRUE(url.ok());
  EXPECT_EQ(url->host, "127.0.0.1");
  EXPECT_EQ(url->port, 8080);
  EXPECT_EQ(url->host_header, "127.0.0.1:8080");
  EXPECT_EQ(url->target, "/a/b?c=d");

  url = ParseHttpUrl("HTTP://[::1]:9000?x=1");
  ASSERT_TRUE(url.ok());
  EXPECT_EQ(url->host, "::1");
  EXPECT_EQ(url->port, 9000);
  EXPECT_EQ(url->host_header, "[::1]:9000");
  EXPECT_EQ(url->target, "/?x=1");
}

TEST(HttpUrlTest, RejectsWhatItCannotServe) {
  Result<HttpUrl> https = ParseHttpUrl("https://example.com/hook");
  ASSERT_FALSE(https.ok());
  EXPECT_EQ(https.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(https.status().message(), "https handler urls are not supported in this build yet");
  for (const char* bad :
       {"ftp://x/", "example.com", "http://", "http://:80/", "http://h:0/", "http://h:70000/",
        "http://h:x/", "http://u:p@h/", "http://h/#frag", "http://h/a b", "http://[::1/"}) {
    EXPECT_FALSE(ParseHttpUrl(bad).ok()) << bad;
  }
}

TEST(RetryAfterTest, DeltaSeconds) {
  EXPECT_EQ(ParseRetryAfter("120", 0), milliseconds(120'000));
  EXPECT_EQ(ParseRetryAfter(" 5 ", 0), milliseconds(5000));
  EXPECT_EQ(ParseRetryAfter("0", 0), milliseconds(0));
  EXPECT_EQ(ParseRetryAfter("99999999999999999999", 0), milliseconds(365LL * 24 * 3600 * 1000));
  EXPECT_EQ(ParseRetryAfter("", 0), std::nullopt);
  EXPECT_EQ(ParseRetryAfter("-5", 0), std::nullopt);
  EXPECT_EQ(ParseRetryAfter("1.5", 0), std::nullopt);
  EXPECT_EQ(ParseRetryAfter("soon", 0), std::nullopt);
}

TEST(RetryAfterTest, HttpDates) {
  const int64_t kDateMs = 784111777LL * 1000;  // Sun, 06 Nov 1994 08:49:37 GMT
  const int64_t now = kDateMs - 10'000;
  EXPECT_EQ(ParseRetryAfter("Sun, 06 Nov 1994 08:49:37 GMT", now), milliseconds(10'000));
  EXPECT_EQ(ParseRetryAfter("Sunday, 06-Nov-94 08:49:37 GMT", now), milliseconds(10'000));
  EXPECT_EQ(ParseRetryAfter("Sun Nov  6 08:49:37 1994", now), milliseconds(10'000));
  EXPECT_EQ(ParseRetryAfter("Sun, 06 Nov 1994 08:49:37 GMT", kDateMs + 5000), milliseconds(0));
  EXPECT_EQ(ParseRetryAfter("Sun, 31 Feb 1994 08:49:37 GMT", now), std::nullopt);
  EXPECT_EQ(ParseRetryAfter("Sun, 06 Nov 1994 25:49:37 GMT", now), std::nullopt);
  EXPECT_EQ(ParseRetryAfter("Sun, 06 Foo 1994 08:49:37 GMT", now), std::nullopt);
  EXPECT_EQ(ParseRetryAfter("Sun, 06 Nov 1994", now), std::nullopt);
}

TEST_F(UrlHandlerTest, MakeHandlerChecksUrlsAndAmbiguousConfig) {
  JobConfig job;
  job.type = "t";
  for (const char* good : {"https://example.com/", "http://example.com", "HTTPS://h:8443/a?b=c",
                           "http://[::1]:9000/x"}) {
    job.handler.url = good;
    EXPECT_TRUE(MakeHandler(job, "", io_).ok()) << good;
  }
  const std::pair<const char*, const char*> kBad[] = {
      {"ftp://x/", "handler url must start with http:// or https://: ftp://x/"},
      {"example.com", "handler url is not a valid URL"},
      {"http://", "handler url has no host: http://"},
      {"https://:80/", "handler url has no host"},
      {"http://h:0/", "handler url has a bad port (1-65535): http://h:0/"},
      {"https://h:70000/", "handler url has a bad port"},
      {"http://h:x/", "handler url has a bad port"},
      {"https://u:p@h/", "handler url must not carry user info: https://u:p@h/"},
      {"http://h/#frag", "handler url must not have a fragment: http://h/#frag"},
      {"https://h/a b", "handler url is not a valid URL"},
      {"http://[::1/", "handler url is not a valid URL"},
  };
  for (const auto& [bad, message] : kBad) {
    job.handler.url = bad;
    Result<std::unique_ptr<Handler>> handler = MakeHandler(job, "", io_);
    ASSERT_FALSE(handler.ok()) << bad;
    EXPECT_EQ(handler.status().code(), StatusCode::kInvalidArgument);
    EXPECT_THAT(handler.status().message(), HasSubstr(message)) << bad;
  }

  job.handler.command = {"/bin/cat"};
  job.handler.url = "http://127.0.0.1:1/";
  EXPECT_FALSE(MakeHandler(job, "", io_).ok());
  job.handler = {};
  EXPECT_FALSE(MakeHandler(job, "", io_).ok());
}

// A wrong ca_file is found when the handler is made (`firebreak check` makes them all),
// not at the first job.
TEST_F(UrlHandlerTest, MakeHandlerChecksTheCaFile) {
  TempDirectory temp;
  const std::string& dir = temp.path();
  const std::string not_pem = dir + "/not_pem.txt";
  std::ofstream(not_pem) << "not a certificate\n";
  const std::string pem = dir + "/ca.pem";
  std::ofstream(pem) << "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";

  JobConfig job;
  job.type = "t";
  job.handler.url = "https://example.com/hook";
  job.handler.ca_file = dir + "/missing.pem";
  Result<std::unique_ptr<Handler>> handler = MakeHandler(job, "", io_);
  ASSERT_FALSE(handler.ok());
  EXPECT_EQ(handler.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(handler.status().message(), "handler ca_file \"" + job.handler.ca_file +
                                            "\": cannot read: No such file or directory");

  job.handler.ca_file = dir;
  handler = MakeHandler(job, "", io_);
  ASSERT_FALSE(handler.ok());
  EXPECT_THAT(handler.status().message(), HasSubstr("cannot read: Is a directory"));

  job.handler.ca_file = not_pem;
  handler = MakeHandler(job, "", io_);
  ASSERT_FALSE(handler.ok());
  EXPECT_THAT(handler.status().message(), HasSubstr("no PEM certificate in it"));

  job.handler.ca_file = pem;
  EXPECT_TRUE(MakeHandler(job, "", io_).ok());

  job.handler.url = "http://example.com/hook";  // nothing to verify over plain http
  handler = MakeHandler(job, "", io_);
  ASSERT_FALSE(handler.ok());
  EXPECT_EQ(handler.status().message(),
            "handler ca_file needs an https:// url, not http://example.com/hook");
}

TEST_F(UrlHandlerTest, SuccessPostsEnvelopeAndReturnsActions) {
  TestHttpServer server(io_);
  server.respond = [](const SeenRequest&) {
    CannedResponse r;
    r.body = R"({"actions": [ {"integration":"slack-api","path":"/x"} ], "note": 1})";
    r.headers = {{"Content-Type", "application/json"}};
    return r;
  };
  auto handler = Make(server.Url("/hook?x=1"));
  HandlerResult r = RunOne(*handler, "job-1");
  EXPECT_EQ(r.kind, Kind::kOk);
  EXPECT_EQ(r.actions_json, R"([{"integration":"slack-api","path":"/x"}])");
  ASSERT_EQ(server.requests.size(), 1u);
  const SeenRequest& seen = server.requests[0];
  EXPECT_EQ(seen.method, "POST");
  EXPECT_EQ(seen.target, "/hook?x=1");
  EXPECT_EQ(seen.host, "127.0.0.1:" + std::to_string(server.port()));
  EXPECT_EQ(seen.content_type, "application/json");
  EXPECT_EQ(seen.job_id, "job-1");
  EXPECT_EQ(seen.body, Envelope("job-1"));
  EXPECT_EQ(seen.traceparent, "");  // none given, none sent
}

// A job id is the client's text (e.g. a dedupe key): control characters never reach
// the header block.
TEST_F(UrlHandlerTest, JobIdHeaderIsMadeSafe) {
  TestHttpServer server(io_);
  auto handler = Make(server.Url("/"));
  HandlerResult r = RunOne(*handler, "job\r\nX-Injected: 1\x7f");
  EXPECT_EQ(r.kind, Kind::kOk) << r.error;
  ASSERT_EQ(server.requests.size(), 1u);
  EXPECT_EQ(server.requests[0].job_id, "job__X-Injected: 1_");
}

// The attempt's span context goes out as the traceparent header, so the bot's own spans
// (and its calls back through the sidecar) continue the trace; a malformed one is not sent.
TEST_F(UrlHandlerTest, SendsTheAttemptsTraceparent) {
  TestHttpServer server(io_);
  auto handler = Make(server.Url("/"));
  const std::string traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
  int calls = 0;
  handler->Run({"job-1", traceparent, Envelope("job-1")}, milliseconds(3000),
               [&](HandlerResult) { ++calls; });
  handler->Run({"job-2", "00-not-a-traceparent", Envelope("job-2")}, milliseconds(3000),
               [&](HandlerResult) { ++calls; });
  ASSERT_TRUE(RunUntil([&] { return calls == 2; }));
  ASSERT_EQ(server.requests.size(), 2u);
  for (const SeenRequest& seen : server.requests) {
    EXPECT_EQ(seen.traceparent, seen.job_id == "job-1" ? traceparent : "") << seen.job_id;
  }
}

TEST_F(UrlHandlerTest, OtherSuccessBodiesAreFine) {
  TestHttpServer server(io_);
  std::vector<CannedResponse> answers(3);
  answers[0].status = 204;
  answers[1].body = "thanks!";
  answers[2].status = 202;
  answers[2].body = R"({"actions":"not an array"})";
  size_t next = 0;
  server.respond = [&](const SeenRequest&) { return answers[next++]; };
  auto handler = Make(server.Url("/"));
  for (size_t i = 0; i < answers.size(); ++i) {
    HandlerResult r = RunOne(*handler, "job-" + std::to_string(i));
    EXPECT_EQ(r.kind, Kind::kOk) << i;
    EXPECT_EQ(r.actions_json, "") << i;
  }
}

TEST_F(UrlHandlerTest, StatusCodesMapToOutcomes) {
  TestHttpServer server(io_);
  CannedResponse canned;
  server.respond = [&](const SeenRequest&) { return canned; };
  auto handler = Make(server.Url("/"));

  canned.status = 500;
  HandlerResult r = RunOne(*handler, "j500");
  EXPECT_EQ(r.kind, Kind::kFailed);
  EXPECT_EQ(r.error, "HTTP 500");
  EXPECT_FALSE(r.retry_after.has_value());

  canned.status = 429;
  canned.headers = {{"Retry-After", "2"}};
  r = RunOne(*handler, "j429");
  EXPECT_EQ(r.kind, Kind::kFailed);
  EXPECT_EQ(r.error, "HTTP 429");
  EXPECT_EQ(r.retry_after, milliseconds(2000));
  canned.headers.clear();

  canned.status = 408;
  EXPECT_EQ(RunOne(*handler, "j408").kind, Kind::kFailed);

  canned.status = 400;
  r = RunOne(*handler, "j400");
  EXPECT_EQ(r.kind, Kind::kRejected);
  EXPECT_EQ(r.error, "HTTP 400");

  canned.status = 404;
  EXPECT_EQ(RunOne(*handler, "j404").kind, Kind::kRejected);

  canned.status = 302;
  r = RunOne(*handler, "j302");
  EXPECT_EQ(r.kind, Kind::kFailed);
  EXPECT_EQ(r.error, "HTTP 302");
}

TEST_F(UrlHandlerTest, RetryAfterHttpDateUsesInjectedClock) {
  TestHttpServer server(io_);
  server.respond = [](const SeenRequest&) {
    CannedResponse r;
    r.status = 503;
    r.headers = {{"Retry-After", "Sun, 06 Nov 1994 08:49:37 GMT"}};
    return r;
  };
  FakeClock clock(784111777LL * 1000 - 30'000);
  JobConfig job;
  job.type = "test.url";
  job.handler.url = server.Url("/");
  Result<std::unique_ptr<UrlHandler>> handler = UrlHandler::Create(job, io_, clock);
  ASSERT_TRUE(handler.ok());
  HandlerResult r = RunOne(**handler, "j503");
  EXPECT_EQ(r.kind, Kind::kFailed);
  EXPECT_EQ(r.error, "HTTP 503");
  EXPECT_EQ(r.retry_after, milliseconds(30'000));
}

TEST_F(UrlHandlerTest, SlowServerTimesOut) {
  TestHttpServer server(io_);
  server.respond = [](const SeenRequest&) {
    CannedResponse r;
    r.delay = milliseconds(3000);
    return r;
  };
  auto handler = Make(server.Url("/"));
  auto start = std::chrono::steady_clock::now();
  HandlerResult r = RunOne(*handler, "job-slow", milliseconds(200));
  auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(r.kind, Kind::kTimedOut);
  EXPECT_EQ(r.error, "timed out after 200ms");
  EXPECT_GE(took, milliseconds(200));
  EXPECT_LT(took, milliseconds(1000));
  // The transfer was aborted: its connection is closed, not kept for the next job.
  EXPECT_TRUE(RunUntil([&] { return server.connections_closed_by_client == 1; }));
  server.respond = [](const SeenRequest&) { return CannedResponse{}; };
  EXPECT_EQ(RunOne(*handler, "job-next").kind, Kind::kOk);
  EXPECT_EQ(server.connections_accepted, 2);
}

TEST_F(UrlHandlerTest, RefusedConnectionFails) {
  uint16_t port = 0;
  {
    tcp::acceptor closed(io_, tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), 0));
    port = closed.local_endpoint().port();
  }
  auto handler = Make("http://127.0.0.1:" + std::to_string(port) + "/");
  HandlerResult r = RunOne(*handler, "job-refused");
  EXPECT_EQ(r.kind, Kind::kFailed);
  EXPECT_THAT(r.error, HasSubstr("Failed to connect to 127.0.0.1 port " + std::to_string(port)));
}

TEST_F(UrlHandlerTest, KeepAliveReusesOneConnection) {
  TestHttpServer server(io_);
  auto handler = Make(server.Url("/"));
  EXPECT_EQ(RunOne(*handler, "job-1").kind, Kind::kOk);
  EXPECT_EQ(RunOne(*handler, "job-2").kind, Kind::kOk);
  EXPECT_EQ(RunOne(*handler, "job-3").kind, Kind::kOk);
  EXPECT_EQ(server.requests.size(), 3u);
  EXPECT_EQ(server.connections_accepted, 1);
  EXPECT_EQ(server.connections_closed_by_client, 0);
}

TEST_F(UrlHandlerTest, HostNamesAreResolved) {
  TestHttpServer server(io_);
  auto handler = Make("http://localhost:" + std::to_string(server.port()) + "/named");
  HandlerResult r = RunOne(*handler, "job-named");
  EXPECT_EQ(r.kind, Kind::kOk) << r.error;
  ASSERT_EQ(server.requests.size(), 1u);
  EXPECT_EQ(server.requests[0].host, "localhost:" + std::to_string(server.port()));
}

TEST_F(UrlHandlerTest, StalePooledConnectionIsRetriedOnANewOne) {
  TestHttpServer server(io_);
  server.respond = [](const SeenRequest&) {
    CannedResponse r;
    r.close_after = true;  // keep-alive promised, then closed while idle
    return r;
  };
  auto handler = Make(server.Url("/"));
  EXPECT_EQ(RunOne(*handler, "job-1").kind, Kind::kOk);  // pooled, then closed by the server
  RunUntil([] { return false; }, milliseconds(50));      // let the close arrive
  HandlerResult second = RunOne(*handler, "job-2");
  EXPECT_EQ(second.kind, Kind::kOk) << second.error;
  EXPECT_EQ(server.connections_accepted, 2);
  EXPECT_EQ(server.requests.size(), 2u);
}

TEST_F(UrlHandlerTest, NewConnectionIsNeverRetried) {
  TestHttpServer server(io_);
  server.respond = [](const SeenRequest&) {
    CannedResponse r;
    r.drop_request = true;
    return r;
  };
  auto handler = Make(server.Url("/"));
  HandlerResult r = RunOne(*handler, "job-dropped");
  EXPECT_EQ(r.kind, Kind::kFailed);
  EXPECT_THAT(r.error, HasSubstr("Empty reply from server"));
  EXPECT_EQ(server.connections_accepted, 1);
  EXPECT_EQ(server.requests.size(), 1u);
}

TEST_F(UrlHandlerTest, OversizedResponseBodyFails) {
  TestHttpServer server(io_);
  server.respond = [](const SeenRequest&) {
    CannedResponse r;
    r.body = std::string(UrlHandler::kMaxResponseBody + 1, 'x');
    return r;
  };
  auto handler = Make(server.Url("/"));
  HandlerResult r = RunOne(*handler, "job-big");
  EXPECT_EQ(r.kind, Kind::kFailed);
  EXPECT_EQ(r.error, "response body larger than 1 MiB");
}

TEST_F(UrlHandlerTest, ShutdownClosesIdleConnectionsAndRefusesNewRuns) {
  TestHttpServer server(io_);
  auto handler = Make(server.Url("/"));
  EXPECT_EQ(RunOne(*handler, "job-1").kind, Kind::kOk);
  EXPECT_FALSE(handler->Drained());
  handler->Shutdown();
  EXPECT_TRUE(handler->Drained());
  EXPECT_TRUE(RunUntil([&] { return server.connections_closed_by_client == 1; }));
  HandlerResult r = RunOne(*handler, "job-2");
  EXPECT_EQ(r.kind, Kind::kFailed);
  EXPECT_EQ(r.error, "handler is shut down");
  EXPECT_EQ(server.requests.size(), 1u);
}

// Shutdown lets a running attempt finish; the pooled connections close after it.
TEST_F(UrlHandlerTest, ShutdownWhileRunningClosesConnectionsAfterTheLastAttempt) {
  TestHttpServer server(io_);
  server.respond = [](const SeenRequest& seen) {
    CannedResponse r;
    if (seen.job_id == "job-slow") r.delay = milliseconds(300);
    return r;
  };
  auto handler = Make(server.Url("/"));
  auto& url_handler = dynamic_cast<UrlHandler&>(*handler);
  int calls = 0;
  HandlerResult slow;
  handler->Run({"job-slow", "", Envelope("job-slow")}, milliseconds(3000), [&](HandlerResult r) {
    ++calls;
    slow = std::move(r);
  });
  ASSERT_TRUE(RunUntil([&] { return server.requests.size() == 1; }));
  EXPECT_EQ(RunOne(*handler, "job-fast").kind, Kind::kOk);  // a second connection, now idle
  ASSERT_EQ(server.connections_accepted, 2);
  handler->Shutdown();
  EXPECT_EQ(url_handler.RunningAttempts(), 1u);
  RunUntil([] { return false; }, milliseconds(100));
  EXPECT_EQ(server.connections_closed_by_client, 0);  // the pool waits for the running one
  ASSERT_TRUE(RunUntil([&] { return calls == 1; }));
  EXPECT_EQ(slow.kind, Kind::kOk) << slow.error;
  EXPECT_TRUE(RunUntil([&] { return server.connections_closed_by_client == 2; }));
}

TEST_F(UrlHandlerTest, DestructorAnswersRunningAttempts) {
  TestHttpServer server(io_);
  server.respond = [](const SeenRequest&) {
    CannedResponse r;
    r.delay = milliseconds(3000);
    return r;
  };
  auto handler = Make(server.Url("/"));
  int calls = 0;
  HandlerResult result;
  handler->Run({"job-1", "", Envelope("job-1")}, milliseconds(5000), [&](HandlerResult r) {
    ++calls;
    result = std::move(r);
  });
  ASSERT_TRUE(RunUntil([&] { return !server.requests.empty(); }));
  handler.reset();
  EXPECT_EQ(calls, 0);  // posted, not inline
  ASSERT_TRUE(RunUntil([&] { return calls == 1; }));
  EXPECT_EQ(result.kind, Kind::kFailed);
  EXPECT_EQ(result.error, "handler stopped");
  EXPECT_TRUE(RunUntil([&] { return server.connections_closed_by_client == 1; }));  // aborted
}

TEST_F(UrlHandlerTest, ConcurrentRunsEachGetAnAnswer) {
  TestHttpServer server(io_);
  server.respond = [](const SeenRequest& seen) {
    CannedResponse r;
    r.delay = milliseconds(50);
    r.body = R"({"actions":[")" + seen.job_id + R"("]})";
    return r;
  };
  auto handler = Make(server.Url("/"), 4);
  std::vector<HandlerResult> results(4);
  int done = 0;
  for (int i = 0; i < 4; ++i) {
    std::string id = "job-" + std::to_string(i);
    handler->Run({id, "", Envelope(id)}, milliseconds(3000), [&, i](HandlerResult r) {
      results[i] = std::move(r);
      ++done;
    });
  }
  ASSERT_TRUE(RunUntil([&] { return done == 4; }));
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(results[i].kind, Kind::kOk);
    EXPECT_EQ(results[i].actions_json, "[\"job-" + std::to_string(i) + "\"]");
  }
  EXPECT_EQ(server.connections_accepted, 4);
  // All four were pooled: a second round reuses them.
  for (int i = 0; i < 4; ++i) {
    std::string id = "again-" + std::to_string(i);
    handler->Run({id, "", Envelope(id)}, milliseconds(3000), [&](HandlerResult) { ++done; });
  }
  ASSERT_TRUE(RunUntil([&] { return done == 8; }));
  EXPECT_EQ(server.connections_accepted, 4);
}

// ---------------------------------------------------------------------------------
// https: a real TLS server (python3 http.server + ssl, a child process) with a test CA
// made by the openssl CLI in a temp dir. The test CA is in no system store.

class UrlHandlerHttpsTest : public UrlHandlerTest {
 protected:
  void SetUp() override {
    Result<testing::TestCertificates> made = testing::MakeTestCertificates(dir_.path());
    ASSERT_TRUE(made.ok()) << made.status().message();
    certs_ = *made;
  }

  // A server with `cert`/`key` in its own directory, started (the test fails if not).
  std::unique_ptr<testing::HttpsServer> StartServer(const std::string& cert,
                                                    const std::string& key) {
    std::string server_dir = dir_.path() + "/server" + std::to_string(++servers_);
    std::filesystem::create_directory(server_dir);
    auto server = std::make_unique<testing::HttpsServer>(server_dir, cert, key);
    EXPECT_TRUE(server->Start()) << server->Log();
    return server;
  }

  std::unique_ptr<Handler> MakeHttps(const std::string& url, const std::string& ca_file) {
    JobConfig job;
    job.type = "test.https";
    job.concurrency = 2;
    job.handler.url = url;
    job.handler.ca_file = ca_file;
    Result<std::unique_ptr<Handler>> handler = MakeHandler(job, "", io_);
    EXPECT_TRUE(handler.ok()) << handler.status().ToString();
    return handler.ok() ? std::move(handler).value() : nullptr;
  }

  TempDirectory dir_;
  testing::TestCertificates certs_;
  int servers_ = 0;
};

TEST_F(UrlHandlerHttpsTest, TrustedThroughCaFile) {
  auto server = StartServer(certs_.server_cert, certs_.server_key);
  ASSERT_TRUE(server->SetReply({200,
                                {{"Content-Type", "application/json"}},
                                R"({"actions":[{"integration":"slack-api","path":"/x"}]})"}));
  auto handler = MakeHttps(server->Url("/hook?x=1"), certs_.ca_file);
  ASSERT_NE(handler, nullptr);
  const std::string traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
  int calls = 0;
  HandlerResult r;
  handler->Run({"job-1", traceparent, Envelope("job-1")}, milliseconds(5000), [&](HandlerResult x) {
    ++calls;
    r = std::move(x);
  });
  ASSERT_TRUE(RunUntil([&] { return calls == 1; }, milliseconds(8000)));
  EXPECT_EQ(r.kind, Kind::kOk) << r.error;
  EXPECT_EQ(r.actions_json, R"([{"integration":"slack-api","path":"/x"}])");

  std::vector<testing::HttpsRequest> seen = server->Requests();
  ASSERT_EQ(seen.size(), 1u) << server->Log();
  EXPECT_EQ(seen[0].method, "POST");
  EXPECT_EQ(seen[0].target, "/hook?x=1");
  EXPECT_EQ(seen[0].body, Envelope("job-1"));
  EXPECT_EQ(seen[0].Header("host"), "127.0.0.1:" + std::to_string(server->port()));
  EXPECT_EQ(seen[0].Header("content-type"), "application/json");
  EXPECT_EQ(seen[0].Header("x-firebreak-job-id"), "job-1");
  EXPECT_EQ(seen[0].Header("traceparent"), traceparent);
  EXPECT_THAT(seen[0].Header("user-agent"), ::testing::StartsWith("firebreak"));

  // The TLS connection is kept and reused: one handshake for both jobs.
  EXPECT_EQ(RunOne(*handler, "job-2", milliseconds(5000)).kind, Kind::kOk);
  seen = server->Requests();
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[1].connection, seen[0].connection);
  EXPECT_EQ(server->Handshakes(), 1);
}

// The certificate names localhost too (DNS subjectAltName, checked against the name).
TEST_F(UrlHandlerHttpsTest, HostNameIsVerifiedByName) {
  auto server = StartServer(certs_.server_cert, certs_.server_key);
  auto handler = MakeHttps(server->Url("/", "localhost"), certs_.ca_file);
  ASSERT_NE(handler, nullptr);
  HandlerResult r = RunOne(*handler, "job-1", milliseconds(5000));
  EXPECT_EQ(r.kind, Kind::kOk) << r.error;
  ASSERT_EQ(server->Requests().size(), 1u);
  EXPECT_EQ(server->Requests()[0].Header("host"), "localhost:" + std::to_string(server->port()));
}

TEST_F(UrlHandlerHttpsTest, UntrustedCertificateFailsWithoutCaFile) {
  auto server = StartServer(certs_.server_cert, certs_.server_key);
  auto handler = MakeHttps(server->Url("/"), "");  // the system store: no test CA there
  ASSERT_NE(handler, nullptr);
  HandlerResult r = RunOne(*handler, "job-1", milliseconds(5000));
  EXPECT_EQ(r.kind, Kind::kFailed);
  EXPECT_THAT(r.error,
              HasSubstr("SSL certificate problem: unable to get local issuer certificate"));
  EXPECT_TRUE(RunUntil([&] { return !server->FailedHandshakes().empty(); }));
  EXPECT_TRUE(server->Requests().empty());  // nothing was sent to an unverified server
}

TEST_F(UrlHandlerHttpsTest, CertificateForAnotherHostFails) {
  auto server = StartServer(certs_.other_cert, certs_.other_key);  // same CA, other name
  auto handler = MakeHttps(server->Url("/"), certs_.ca_file);
  ASSERT_NE(handler, nullptr);
  HandlerResult r = RunOne(*handler, "job-1", milliseconds(5000));
  EXPECT_EQ(r.kind, Kind::kFailed);
  EXPECT_THAT(r.error, HasSubstr("no alternative certificate subject name matches target host "
                                 "name '127.0.0.1'"));
  EXPECT_TRUE(server->Requests().empty());
}

TEST_F(UrlHandlerHttpsTest, StatusCodesAndRetryAfterMapAsOverHttp) {
  auto server = StartServer(certs_.server_cert, certs_.server_key);
  auto handler = MakeHttps(server->Url("/"), certs_.ca_file);
  ASSERT_NE(handler, nullptr);
  ASSERT_TRUE(server->SetReply({503, {{"Retry-After", "7"}}, "busy"}));
  HandlerResult r = RunOne(*handler, "j503", milliseconds(5000));
  EXPECT_EQ(r.kind, Kind::kFailed);
  EXPECT_EQ(r.error, "HTTP 503");
  EXPECT_EQ(r.retry_after, milliseconds(7000));
  ASSERT_TRUE(server->SetReply({404, {}, ""}));
  r = RunOne(*handler, "j404", milliseconds(5000));
  EXPECT_EQ(r.kind, Kind::kRejected);
  EXPECT_EQ(r.error, "HTTP 404");
}

TEST_F(UrlHandlerHttpsTest, TimeoutAbortsTheTransfer) {
  auto server = StartServer(certs_.server_cert, certs_.server_key);
  auto handler = MakeHttps(server->Url("/"), certs_.ca_file);
  ASSERT_NE(handler, nullptr);
  EXPECT_EQ(RunOne(*handler, "warm-up", milliseconds(5000)).kind, Kind::kOk);
  ASSERT_TRUE(server->SetReply({200, {}, "", milliseconds(5000)}));
  auto start = std::chrono::steady_clock::now();
  HandlerResult r = RunOne(*handler, "job-slow", milliseconds(300));
  EXPECT_EQ(r.kind, Kind::kTimedOut);
  EXPECT_EQ(r.error, "timed out after 300ms");
  EXPECT_LT(std::chrono::steady_clock::now() - start, milliseconds(2000));
  // The server sees the connection go well before its answer was due.
  EXPECT_TRUE(RunUntil([&] { return server->ClosedConnections() == 1; }, milliseconds(3000)))
      << server->Log();
}

}  // namespace
}  // namespace firebreak
