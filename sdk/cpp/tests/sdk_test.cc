// The C++ SDK against the protocol (docs/handler-protocol.md): answers for every way a
// handler ends, command mode with concurrency, url mode, and the sidecar's refusals,
// compare-and-set and the deadline against a simulated sidecar on loopback.
// tests/integration/sdk_cpp_test.cc runs a bot written with it against the real binary.
#include "firebreak/sdk.h"

#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <ctime>
#include <functional>
#include <future>
#include <iostream>
#include <set>
#include <sstream>
#include <thread>

namespace {

using firebreak::Bot;
using firebreak::Context;
using firebreak::Json;
namespace asio = boost::asio;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;

struct SeenRequest {
  std::string method, target, body;
  std::map<std::string, std::string> headers;  // lower-case names
};
using Reply = http::response<http::string_body>;

// A simulated sidecar: `respond` answers each request; a thread per connection.
class FakeSidecar {
 public:
  explicit FakeSidecar(std::function<Reply(const SeenRequest&)> respond)
      : respond_(std::move(respond)), acceptor_(io_, {asio::ip::make_address("127.0.0.1"), 0}) {
    thread_ = std::thread([this] {
      for (;;) {
        auto socket = std::make_shared<tcp::socket>(io_);
        boost::system::error_code ec;
        acceptor_.accept(*socket, ec);
        if (ec || stopping_) return;
        std::lock_guard lock(mutex_);
        sockets_.push_back(socket);
        connections_.emplace_back([this, socket] { Serve(*socket); });
      }
    });
  }
  ~FakeSidecar() {
    stopping_ = true;
    boost::system::error_code ec;
    tcp::socket wake(io_);
    wake.connect(acceptor_.local_endpoint(), ec);  // unblocks accept()
    thread_.join();
    for (auto& socket : sockets_) socket->shutdown(tcp::socket::shutdown_both, ec);
    for (std::thread& connection : connections_) connection.join();
  }
  std::string url() const {
    return "http://127.0.0.1:" + std::to_string(acceptor_.local_endpoint().port());
  }
  std::vector<SeenRequest> seen() {
    std::lock_guard lock(mutex_);
    return seen_;
  }

 private:
  void Serve(tcp::socket& socket) {
    boost::beast::flat_buffer buffer;
    boost::system::error_code ec;
    while (!stopping_) {
      http::request<http::string_body> req;
      http::read(socket, buffer, req, ec);
      if (ec) return;
      SeenRequest seen{std::string(req.method_string()), std::string(req.target()), req.body(), {}};
      for (const auto& field : req) {
        std::string name(field.name_string());
        for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        seen.headers[name] = std::string(field.value());
      }
      {
        std::lock_guard lock(mutex_);
        seen_.push_back(seen);
      }
      Reply reply = respond_(seen);
      reply.version(11);
      reply.keep_alive(true);
      reply.prepare_payload();
      http::write(socket, reply, ec);
      if (ec) return;
    }
  }

  std::function<Reply(const SeenRequest&)> respond_;
  asio::io_context io_;
  tcp::acceptor acceptor_;
  std::thread thread_;
  std::vector<std::shared_ptr<tcp::socket>> sockets_;
  std::vector<std::thread> connections_;
  std::atomic<bool> stopping_{false};
  std::mutex mutex_;
  std::vector<SeenRequest> seen_;
};

Reply MakeReply(http::status status, const std::string& body,
                std::vector<std::pair<std::string, std::string>> headers = {}) {
  Reply reply(status, 11);
  reply.body() = body;
  reply.set(http::field::content_type, "application/json");
  for (const auto& [name, value] : headers) reply.set(name, value);
  return reply;
}

Reply Refusal(http::status status, const std::string& reason,
              std::vector<std::pair<std::string, std::string>> headers = {}) {
  headers.emplace_back("X-Firebreak-Origin", "firebreak");
  return MakeReply(status, Json{{"ok", false}, {"error", reason}}.dump(), headers);
}

// "2026-11-27T20:00:30.214Z" for now + `seconds`.
std::string IsoIn(double seconds) {
  auto when = std::chrono::system_clock::now() +
              std::chrono::duration_cast<std::chrono::system_clock::duration>(
                  std::chrono::duration<double>(seconds));
  std::time_t t = std::chrono::system_clock::to_time_t(when);
  auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(when.time_since_epoch()).count() % 1000;
  std::tm tm{};
  gmtime_r(&t, &tm);
  char text[96];
  std::snprintf(text, sizeof text, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms));
  return text;
}

Json Envelope(const std::string& id, const std::string& type, Json payload = Json::object()) {
  return {{"id", id},
          {"type", type},
          {"source", "slack"},
          {"dedupe_key", "slack:" + id},
          {"attempt", 1},
          {"max_attempts", 3},
          {"enqueued_at", "2026-11-27T20:00:00.000Z"},
          {"deadline", IsoIn(30)},
          {"traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
          {"headers", {{"x-slack-retry-num", "1"}}},
          {"payload", std::move(payload)}};
}

TEST(CppSdkTest, AnswersCarryActionsEnqueuedJobsAndEveryWayAHandlerEnds) {
  Bot bot("http://127.0.0.1:1");
  bot.on("ok",
         [](Context& ctx) {
           EXPECT_EQ(ctx.envelope().trace_id(), "0af7651916cd43dd8448eb211c80319c");
           EXPECT_EQ(ctx.envelope().headers.at("x-slack-retry-num"), "1");
           EXPECT_GT(ctx.time_left(), 25);
           ctx.action("slack-api", "post", "/api/chat.postMessage",
                      {{"text", ctx.payload()["text"]}});
           firebreak::EnqueueOptions later;
           later.delay = "10m";
           later.key = "k1";
           ctx.enqueue("reminder", {{"n", 1}}, later);
         })
      .on("retry", [](Context&) { throw firebreak::Retry("busy", 2.5); })
      .on("reject", [](Context&) { throw firebreak::Reject("bad input"); })
      .on("bug", [](Context&) { throw std::out_of_range("index 7"); });

  Json ok = bot.handle(Envelope("J1", "ok", {{"text", "hi"}}));
  EXPECT_EQ(ok, Json::parse(R"({"id":"J1","ok":true,
      "actions":[{"integration":"slack-api","method":"POST","path":"/api/chat.postMessage","json":{"text":"hi"}}],
      "enqueue":[{"type":"reminder","payload":{"n":1},"delay":"10m","key":"k1"}]})"));
  EXPECT_EQ(bot.handle(Envelope("J2", "retry")),
            Json::parse(R"({"id":"J2","ok":false,"error":"busy","retry":true,"retry_after":2.5})"));
  EXPECT_EQ(bot.handle(Envelope("J3", "reject")),
            Json::parse(R"({"id":"J3","ok":false,"error":"bad input","retry":false})"));
  EXPECT_EQ(bot.handle(Envelope("J4", "bug")),
            Json::parse(R"({"id":"J4","ok":false,"error":"index 7","retry":true})"));
  Json unknown = bot.handle(Envelope("J5", "nobody"));
  EXPECT_EQ(unknown["retry"], false);
  EXPECT_EQ(unknown["error"], "no handler for job type 'nobody'");
  Json bad = bot.handle(Json{{"type", "ok"}});
  EXPECT_EQ(bad["retry"], false);
  EXPECT_EQ(bad["id"], "");

  bot.on("*", [](Context&) {});
  EXPECT_EQ(bot.handle(Envelope("J6", "nobody")), Json::parse(R"({"id":"J6","ok":true})"));
  // A batch run: one result per job, each with its own outcome.
  Json batch = {{"id", "B1"},
                {"type", "ok"},
                {"batch", {Envelope("J7", "ok", {{"text", "a"}}), Envelope("J8", "reject")}}};
  Json answer = bot.handle(batch);
  ASSERT_EQ(answer["results"].size(), 2u);
  EXPECT_EQ(answer["id"], "B1");
  EXPECT_EQ(answer["results"][0]["id"], "J7");
  EXPECT_EQ(answer["results"][0]["ok"], true);
  EXPECT_EQ(answer["results"][1]["id"], "J8");
  EXPECT_EQ(answer["results"][1]["retry"], false);
}

TEST(CppSdkTest, CommandModeAnswersEveryLineByIdAndRunsJobsConcurrently) {
  Bot bot("http://127.0.0.1:1");
  std::atomic<int> running{0}, most{0};
  bot.on("slow", [&](Context&) {
    int now = ++running;
    for (int seen = most.load(); now > seen && !most.compare_exchange_weak(seen, now);) {
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    --running;
  });
  std::stringstream in, out;
  for (int i = 0; i < 8; ++i) in << Envelope("S" + std::to_string(i), "slow").dump() << "\n\n";
  in << "not json\n";
  auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(bot.run(in, out, 4), 0);
  auto took = std::chrono::steady_clock::now() - start;
  std::set<std::string> ids;
  std::string line;
  while (std::getline(out, line)) {
    Json answer = Json::parse(line);
    EXPECT_EQ(answer["ok"], true) << line;
    ids.insert(answer["id"].get<std::string>());
  }
  EXPECT_EQ(ids.size(), 8u);
  EXPECT_EQ(most.load(), 4);
  EXPECT_LT(took, std::chrono::milliseconds(700)) << "8 jobs of 100 ms on 4 threads";
}

TEST(CppSdkTest, SidecarRefusalsThrowWithTheirReasonAndUpstreamAnswersComeBack) {
  FakeSidecar sidecar([](const SeenRequest& req) {
    if (req.target.find("/breaker") != std::string::npos) {
      return Refusal(http::status::service_unavailable, "breaker open",
                     {{"X-Firebreak-Breaker", "open"}, {"Retry-After", "12"}});
    }
    if (req.target.find("/limited") != std::string::npos) {
      return Refusal(http::status::too_many_requests, "rate limited",
                     {{"X-Firebreak-Rejected", "rate_limit"}, {"Retry-After", "0.4"}});
    }
    if (req.target.find("/full") != std::string::npos) {
      return Refusal(http::status::service_unavailable, "max_concurrency",
                     {{"X-Firebreak-Rejected", "concurrency"}});
    }
    if (req.target.find("/slow") != std::string::npos)
      return Refusal(http::status::gateway_timeout, "upstream timed out");
    if (req.target.find("/down") != std::string::npos)
      return Refusal(http::status::bad_gateway, "connection refused");
    if (req.target.find("/oops") != std::string::npos)
      return MakeReply(http::status::internal_server_error, "{\"upstream\":1}");
    return MakeReply(http::status::ok, Json{{"echo", req.body}, {"target", req.target}}.dump());
  });
  Bot bot(sidecar.url());
  std::vector<std::string> caught;
  bot.on("calls", [&](Context& ctx) {
    auto api = ctx.integration("crm api");
    auto res = api.get("/users", {{"q", "ada lovelace"}, {"n", "1"}});
    EXPECT_EQ(res.status, 200);
    EXPECT_EQ(res.json()["target"], "/v1/integrations/crm%20api/users?q=ada%20lovelace&n=1");
    EXPECT_EQ(api.post("/notes", {{"a", 1}}).json()["echo"], "{\"a\":1}");
    auto oops = api.get("/oops");
    EXPECT_EQ(oops.status, 500);  // the upstream's own answer is returned, not thrown
    EXPECT_THROW(oops.raise_for_status(), firebreak::UpstreamError);
    try {
      api.get("/breaker");
    } catch (const firebreak::BreakerOpen& e) {
      caught.push_back("breaker " + e.reason() + " " +
                       std::to_string(e.retry_after().value_or(-1)));
    }
    try {
      api.get("/limited");
    } catch (const firebreak::RateLimited& e) {
      caught.push_back("limited " + std::to_string(e.retry_after().value_or(-1)));
    }
    try {
      api.get("/full");
    } catch (const firebreak::ConcurrencyFull& e) {
      caught.push_back("full " + std::to_string(e.status()));
    }
    try {
      api.get("/slow");
    } catch (const firebreak::UpstreamTimeout& e) {
      caught.push_back("timeout " + e.reason());
    }
    try {
      api.get("/down");
    } catch (const firebreak::UpstreamUnreachable& e) {
      caught.push_back("unreachable " + e.reason());
    }
    api.get("/breaker");  // uncaught: the attempt fails with the sidecar's Retry-After
  });
  Json answer = bot.handle(Envelope("C1", "calls"));
  EXPECT_EQ(caught, (std::vector<std::string>{"breaker breaker open 12.000000", "limited 0.400000",
                                              "full 503", "timeout upstream timed out",
                                              "unreachable connection refused"}));
  EXPECT_EQ(answer["ok"], false);
  EXPECT_EQ(answer["retry"], true);
  EXPECT_EQ(answer["retry_after"], 12.0);
  EXPECT_NE(answer["error"].get<std::string>().find("breaker open"), std::string::npos);
  for (const SeenRequest& req : sidecar.seen()) {
    EXPECT_EQ(req.headers.at("traceparent"),
              "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
    EXPECT_EQ(req.headers.at("x-firebreak-job-id"), "C1");
  }
}

TEST(CppSdkTest, UpdateIsACompareAndSetLoopThatRereadsAfterAConflict) {
  std::mutex mutex;
  Json value = {{"n", 1}};
  int version = 3;
  int conflicts_left = 1;  // another writer wins the first round
  FakeSidecar sidecar([&](const SeenRequest& req) {
    std::lock_guard lock(mutex);
    if (req.target.rfind("/v1/sessions/chat%3A7", 0) != 0)
      return MakeReply(http::status::not_found, "{}");
    if (req.method == "GET") {
      Reply reply = MakeReply(http::status::ok, value.dump(),
                              {{"ETag", "\"" + std::to_string(version) + "\""}});
      return reply;
    }
    EXPECT_EQ(req.target, "/v1/sessions/chat%3A7?ttl=30m");
    if (conflicts_left > 0) {
      --conflicts_left;
      value = {{"n", 10}};
      ++version;
      return Refusal(http::status::precondition_failed, "version mismatch");
    }
    EXPECT_EQ(req.headers.at("if-match"), "\"" + std::to_string(version) + "\"");
    value = Json::parse(req.body);
    ++version;
    return MakeReply(http::status::ok, Json{{"version", version}}.dump());
  });
  Bot bot(sidecar.url());
  Json written;
  bot.on("count", [&](Context& ctx) {
    EXPECT_TRUE(ctx.session("missing").get().is_null());
    written = ctx.session("chat:7").update(
        [](Json v) {
          return Json{{"n", v["n"].get<int>() + 1}};
        },
        "30m", Json{{"n", 0}});
  });
  EXPECT_EQ(bot.handle(Envelope("U1", "count"))["ok"], true);
  EXPECT_EQ(written, Json({{"n", 11}})) << "the second round read the other writer's value";
  EXPECT_EQ(value, Json({{"n", 11}}));
}

TEST(CppSdkTest, ACallThatWouldOutliveTheDeadlineEndsInARetryBeforeTheKill) {
  FakeSidecar sidecar([](const SeenRequest&) {
    std::this_thread::sleep_for(std::chrono::seconds(2));  // an upstream slower than the attempt
    return MakeReply(http::status::ok, "{}");
  });
  Bot bot(sidecar.url());
  bool cancelled_before = true;
  bot.on("slow", [&](Context& ctx) {
    cancelled_before = ctx.cancelled();
    ctx.integration("api").get("/x");
  });
  Json envelope = Envelope("D1", "slow");
  envelope["deadline"] = IsoIn(0.8);
  auto start = std::chrono::steady_clock::now();
  Json answer = bot.handle(envelope);
  auto took = std::chrono::steady_clock::now() - start;
  EXPECT_FALSE(cancelled_before);
  EXPECT_EQ(answer["ok"], false);
  EXPECT_EQ(answer["retry"], true);
  EXPECT_EQ(answer["error"].get<std::string>().rfind("DeadlineNear", 0), 0u) << answer.dump();
  EXPECT_LT(took, std::chrono::milliseconds(800)) << "the call ends at deadline - 0.25 s";

  envelope["deadline"] = IsoIn(0.1);  // already inside the margin: no call at all
  EXPECT_EQ(bot.handle(envelope)["error"].get<std::string>().rfind("DeadlineNear", 0), 0u);
}

TEST(CppSdkTest, UrlModeAnswersWithTheStatusCodesFirebreakReads) {
  Bot bot("http://127.0.0.1:1");
  bot.on("ok",
         [](Context& ctx) {
           ctx.action("api", "POST", "/x", {{"a", 1}});
         })
      .on("later", [](Context&) { throw firebreak::Retry("not yet", 1.2); })
      .on("never", [](Context&) { throw firebreak::Reject("malformed"); });
  std::promise<uint16_t> port;
  std::thread server([&] { bot.serve(0, "127.0.0.1", [&](uint16_t p) { port.set_value(p); }); });
  firebreak::Sidecar client("http://127.0.0.1:" + std::to_string(port.get_future().get()));
  auto post = [&](const Json& body) {
    return client.request("POST", "/", body.dump(), {{"Content-Type", "application/json"}}, 5);
  };
  auto ok = post(Envelope("W1", "ok"));
  EXPECT_EQ(ok.status, 200);
  EXPECT_EQ(
      ok.json(),
      Json::parse(
          R"({"actions":[{"integration":"api","method":"POST","path":"/x","json":{"a":1}}]})"));
  auto later = post(Envelope("W2", "later"));
  EXPECT_EQ(later.status, 503);
  EXPECT_EQ(later.headers["retry-after"], "2");
  auto never = post(Envelope("W3", "never"));
  EXPECT_EQ(never.status, 422);
  EXPECT_EQ(never.json()["error"], "malformed");
  EXPECT_EQ(client.request("POST", "/", "{nope", {}, 5).status, 400);
  bot.stop();
  server.join();
}

TEST(CppSdkTest, LogLinesAreJsonWithTheJobsIds) {
  std::stringstream captured;
  auto* old = std::cerr.rdbuf(captured.rdbuf());
  Bot bot("http://127.0.0.1:1");
  bot.on("log", [](Context& ctx) { ctx.log.warn("replying", {{"channel", "C7"}}); });
  bot.handle(Envelope("L1", "log"));
  std::cerr.rdbuf(old);
  Json line = Json::parse(captured.str());
  EXPECT_EQ(line, Json::parse(R"({"level":"warn","msg":"replying","job_id":"L1","job_type":"log",
      "trace_id":"0af7651916cd43dd8448eb211c80319c","channel":"C7"})"));
}

}  // namespace
