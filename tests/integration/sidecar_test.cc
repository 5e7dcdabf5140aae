// The worker's sidecar, driven through the real binary: handlers (Python processes)
// and the test itself call /v1/integrations, /v1/sessions and /v1/state against
// simulated upstreams and real stores.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "harness.h"
#include "support/postgres_server.h"
#include "support/upstream_server.h"

namespace firebreak::testing {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

constexpr char kSecret[] = "sidecar-test-secret";

// Records every envelope it gets, then (for "call" jobs) calls the sidecar as the job's
// payload says and records the answer.
constexpr char kCallingBot[] = R"PY(
import json, os, sys, time, urllib.request, urllib.error
out = sys.argv[1]
sidecar = os.environ["FIREBREAK_SIDECAR"]
for line in sys.stdin:
    env = json.loads(line)
    p = env["payload"]
    record = {"id": p["id"], "type": env["type"], "t": time.time()}
    if "call" in p:
        req = urllib.request.Request(sidecar + p["call"], headers={"X-Firebreak-Job-Id": env["id"]})
        t0 = time.time()
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                record["status"] = r.status
        except urllib.error.HTTPError as e:
            record["status"] = e.code
            record["breaker"] = e.headers.get("X-Firebreak-Breaker", "")
        record["elapsed"] = time.time() - t0
    with open(out, "a") as f:
        f.write(json.dumps(record) + "\n")
    print(json.dumps({"id": env["id"], "ok": True}), flush=True)
)PY";

class SidecarTest : public ::testing::Test {
 protected:
  // `extra` goes after the generated sources and jobs ([[integrations]], [store]).
  void Start(const std::string& extra, const std::string& store_toml = "") {
    port_ = FreePort();
    sidecar_port_ = FreePort();
    dir_.Write("secret", kSecret);
    bot_ = dir_.Write("bot.py", kCallingBot);
    std::string config = R"([server]
listen = "127.0.0.1:)" + std::to_string(port_) + R"("
threads = 1
[queue]
path = ")" + dir_.File("q.db") + R"("
[worker]
sidecar = "127.0.0.1:)" + std::to_string(sidecar_port_) + R"("
shutdown_grace = "2s"
)" + store_toml;
    for (const char* type : {"calls", "fast"}) {
      config += std::string("[[sources]]\nname = \"") + type + "\"\nkind = \"hmac\"\npath = \"/hooks/" +
                type + "\"\nsecret = { file = \"" + dir_.File("secret") +
                "\" }\ndedupe = \"/id\"\njob = \"" + type + "\"\n";
      config += std::string("[[jobs]]\ntype = \"") + type +
                "\"\nhandler = { command = [\"/usr/bin/python3\", \"" + bot_ + "\", \"" +
                dir_.File(std::string(type) + ".ndjson") + "\"] }\nconcurrency = " +
                (std::string(type) == "calls" ? "16" : "4") + "\ntimeout = \"20s\"\n";
    }
    config_ = dir_.Write("firebreak.toml", config + extra);
    process_ = std::make_unique<FirebreakProcess>("run", config_, dir_.File("log.txt"), port_);
    ASSERT_TRUE(process_->Start()) << process_->Log();
  }

  void Send(const std::string& type, const nlohmann::json& payload) {
    auto res = PostHmacSigned(port_, "/hooks/" + type, kSecret, payload.dump());
    ASSERT_TRUE(res.ok()) << res.status().ToString();
    ASSERT_EQ(res->status, 200) << res->body;
  }

  std::vector<nlohmann::json> Records(const std::string& type) {
    std::vector<nlohmann::json> out;
    for (const std::string& line : ReadLines(dir_.File(type + ".ndjson"))) {
      auto j = nlohmann::json::parse(line, nullptr, false);
      if (j.is_object()) out.push_back(j);
    }
    return out;
  }

  bool WaitRecords(const std::string& type, size_t n, milliseconds timeout) {
    return WaitFor([&] { return Records(type).size() >= n; }, timeout);
  }

  // A request from the test straight to the sidecar, on one kept-alive connection.
  Result<HttpResponse> Sidecar(const std::string& method, const std::string& target,
                               const std::string& body = "",
                               std::vector<std::pair<std::string, std::string>> headers = {}) {
    if (!sidecar_) sidecar_ = std::make_unique<HttpConnection>("127.0.0.1", sidecar_port_);
    return sidecar_->Send(method, target, headers, body, std::chrono::seconds(20));
  }

  std::string Integration(const std::string& name, const UpstreamServer& upstream,
                          const std::string& keys) {
    return "[[integrations]]\nname = \"" + name + "\"\nbase_url = \"" + upstream.Url() + "\"\n" +
           keys;
  }

  TempDir dir_;
  uint16_t port_ = 0;
  uint16_t sidecar_port_ = 0;
  std::string bot_;
  std::string config_;
  std::unique_ptr<HttpConnection> sidecar_;
  std::unique_ptr<FirebreakProcess> process_;
};

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

TEST_F(SidecarTest, AHangingUpstreamTimesOutEveryCallWhileOtherJobTypesRunAtFullSpeed) {
  UpstreamServer upstream([](const UpstreamRequest&) {
    UpstreamReply reply;
    reply.hang = true;
    return reply;
  });
  ASSERT_NO_FATAL_FAILURE(
      Start(Integration("slow", upstream, "timeout = \"3s\"\nretry = { attempts = 1 }\n")));

  // Baseline: 200 jobs of another type, nothing hanging.
  auto measure = [&](int first) {
    auto started = Clock::now();
    for (int i = 0; i < 200; ++i) Send("fast", {{"id", "f" + std::to_string(first + i)}});
    EXPECT_TRUE(WaitRecords("fast", static_cast<size_t>(first + 200), milliseconds(30'000)));
    return Clock::now() - started;
  };
  Clock::duration alone = measure(0);

  // 16 handlers now block in calls to the hanging upstream while 200 more jobs arrive.
  for (int i = 0; i < 16; ++i) {
    Send("calls", {{"id", "c" + std::to_string(i)}, {"call", "/v1/integrations/slow/hang"}});
  }
  ASSERT_TRUE(WaitFor([&] { return upstream.requests() >= 16; }, milliseconds(10'000)));
  Clock::duration meanwhile = measure(200);
  // Each is still hanging, or was given up on by its timeout (on a loaded machine the
  // first may time out before the last has arrived): none got an answer.
  EXPECT_TRUE(WaitFor([&] { return upstream.in_flight() + upstream.abandoned() == 16; },
                      milliseconds(1000)))  // (the two counters move one after the other)
      << "the slow calls should still be hanging";

  ASSERT_TRUE(WaitRecords("calls", 16, milliseconds(20'000)));
  for (const nlohmann::json& call : Records("calls")) {
    EXPECT_EQ(call["status"], 504) << call.dump();
    EXPECT_GE(call["elapsed"].get<double>(), 2.95) << call.dump();
    EXPECT_LT(call["elapsed"].get<double>(), 3.0 + 1.5) << call.dump();
  }
  EXPECT_TRUE(WaitFor([&] { return upstream.abandoned() == 16; }, milliseconds(5000)))
      << "each timed-out call's connection should be closed: " << upstream.abandoned();
  std::cout << "200 jobs of another type: " << Seconds(alone) << " s alone, "
            << Seconds(meanwhile) << " s while 16 calls hung ("
            << Seconds(meanwhile) / Seconds(alone) << "x)\n";
  EXPECT_LT(Seconds(meanwhile), 2 * Seconds(alone) + 0.3);
}

TEST_F(SidecarTest, BreakerOpensRejectsAtOnceWithoutTheUpstreamAndClosesOnRecovery) {
  std::atomic<bool> healthy{false};
  UpstreamServer upstream([&](const UpstreamRequest&) {
    return healthy ? UpstreamReply{} : UpstreamReply{500, {}, "{\"error\":\"down\"}"};
  });
  ASSERT_NO_FATAL_FAILURE(Start(Integration(
      "crm", upstream,
      "retry = { attempts = 1 }\nbreaker = { failure_rate = 0.5, min_calls = 10, window = "
      "\"30s\", open_for = \"1s\" }\n")));

  for (int i = 0; i < 10; ++i) {
    auto res = Sidecar("GET", "/v1/integrations/crm/contacts/" + std::to_string(i));
    ASSERT_TRUE(res.ok()) << res.status().ToString();
    EXPECT_EQ(res->status, 500);
    EXPECT_EQ(res->Header("X-Firebreak-Attempts"), "1");
  }
  std::vector<double> took_ms;
  for (int i = 0; i < 200; ++i) {
    auto started = Clock::now();
    auto res = Sidecar("GET", "/v1/integrations/crm/contacts/x");
    took_ms.push_back(Seconds(Clock::now() - started) * 1000);
    ASSERT_TRUE(res.ok());
    ASSERT_EQ(res->status, 503);
    EXPECT_EQ(res->Header("X-Firebreak-Breaker"), "open");
    EXPECT_EQ(res->Header("X-Firebreak-Origin"), "firebreak");
    EXPECT_FALSE(res->Header("Retry-After").empty());
  }
  EXPECT_EQ(upstream.requests(), 10) << "an open breaker must not touch the upstream";
  std::sort(took_ms.begin(), took_ms.end());
  std::cout << "rejections through the sidecar (HTTP round trip from the test): p50 "
            << took_ms[100] << " ms, p99 " << took_ms[198] << " ms\n";
  EXPECT_LT(took_ms[100], 1.0);

  std::string scrape = ScrapeMetrics(port_);
  EXPECT_EQ(MetricValue(scrape, "firebreak_circuit_breaker_state", {"integration=\"crm\""}), 2);
  EXPECT_EQ(MetricValue(scrape, "firebreak_integration_requests_total",
                        {"integration=\"crm\"", "outcome=\"rejected_open\""}),
            200);
  EXPECT_EQ(MetricValue(scrape, "firebreak_integration_requests_total",
                        {"integration=\"crm\"", "outcome=\"error\""}),
            10);

  // After open_for: half-open (gauge 1); the upstream is back, so the probe closes it.
  ASSERT_TRUE(WaitFor(
      [&] {
        return MetricValue(ScrapeMetrics(port_), "firebreak_circuit_breaker_state",
                           {"integration=\"crm\""}) == 1;
      },
      milliseconds(5000)));
  healthy = true;
  auto probe = Sidecar("GET", "/v1/integrations/crm/contacts/1");
  ASSERT_TRUE(probe.ok());
  EXPECT_EQ(probe->status, 200);
  EXPECT_EQ(MetricValue(ScrapeMetrics(port_), "firebreak_circuit_breaker_state",
                        {"integration=\"crm\""}),
            0);
  for (const char* line : {"circuit breaker opened", "circuit breaker half-open: probing",
                           "circuit breaker closed"}) {
    // Log lines are written asynchronously, within milliseconds.
    EXPECT_TRUE(WaitFor([&] { return process_->Log().find(line) != std::string::npos; },
                        milliseconds(2000)))
        << line;
  }
}

TEST_F(SidecarTest, MaxConcurrencyHoldsUnderFiveHundredSimultaneousRequests) {
  UpstreamServer upstream(
      [](const UpstreamRequest&) {
        UpstreamReply reply;
        reply.delay = milliseconds(100);
        return reply;
      },
      4);
  ASSERT_NO_FATAL_FAILURE(Start(Integration(
      "llm", upstream, "max_concurrency = 40\ntimeout = \"20s\"\nretry = { attempts = 1 }\n")));
  std::atomic<int> ok{0};
  std::vector<std::thread> clients;
  for (int i = 0; i < 500; ++i) {
    clients.emplace_back([&, i] {
      HttpRequest req;
      req.method = "POST";
      req.url = "http://127.0.0.1:" + std::to_string(sidecar_port_) +
                "/v1/integrations/llm/v1/chat/completions";
      req.body = "{\"n\":" + std::to_string(i) + "}";
      req.timeout = std::chrono::seconds(30);
      auto res = HttpCall(req);
      if (res.ok() && res->status == 200) ++ok;
    });
  }
  for (std::thread& t : clients) t.join();
  EXPECT_EQ(ok.load(), 500);
  EXPECT_EQ(upstream.requests(), 500);
  EXPECT_LE(upstream.peak_in_flight(), 40);
  EXPECT_GE(upstream.peak_in_flight(), 30);
  std::cout << "upstream peak concurrency under 500 simultaneous requests: "
            << upstream.peak_in_flight() << " (max_concurrency 40)\n";
}

TEST_F(SidecarTest, RetryAfterFromTheUpstreamIsHonouredAndHeadersAreInjected) {
  std::atomic<int> calls{0};
  UpstreamServer upstream([&](const UpstreamRequest&) {
    if (calls++ == 0) return UpstreamReply{429, {{"Retry-After", "1"}}, "{\"ok\":false}"};
    return UpstreamReply{200, {{"X-Slack-Thing", "yes"}}, "{\"ok\":true,\"ts\":\"1.2\"}"};
  });
  setenv("SIDECAR_TEST_TOKEN", "xoxb-test-token", 1);
  ASSERT_NO_FATAL_FAILURE(Start(Integration(
      "slack-api", upstream,
      "auth = { bearer = { env = \"SIDECAR_TEST_TOKEN\" } }\nretry = { attempts = 3, backoff = "
      "[\"100ms\", \"2s\"] }\n")));
  auto res = Sidecar("GET", "/v1/integrations/slack-api/api/conversations.info?channel=C1", "",
                     {{"Authorization", "Bearer handler-must-not-win"},
                      {"traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}});
  ASSERT_TRUE(res.ok());
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->body, "{\"ok\":true,\"ts\":\"1.2\"}");
  EXPECT_EQ(res->Header("X-Slack-Thing"), "yes");
  EXPECT_EQ(res->Header("X-Firebreak-Attempts"), "2");
  auto seen = upstream.Requests();
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_GE(seen[1].at - seen[0].at, milliseconds(1000));
  EXPECT_EQ(seen[1].target, "/api/conversations.info?channel=C1");
  EXPECT_EQ(seen[1].Header("authorization"), "Bearer xoxb-test-token");
  // The call's span is a child of the handler's context: same trace, new span id.
  EXPECT_EQ(seen[1].Header("traceparent").substr(0, 36),
            "00-0af7651916cd43dd8448eb211c80319c-");
  EXPECT_NE(seen[1].Header("traceparent").substr(36, 16), "b7ad6b7169203331");
  EXPECT_EQ(seen[0].Header("traceparent"), seen[1].Header("traceparent"));  // one call, one span
  EXPECT_EQ(process_->Log().find("xoxb-test-token"), std::string::npos) << "token in the log";

  // Refusals that never reach an upstream.
  auto unknown = Sidecar("GET", "/v1/integrations/nope/x");
  ASSERT_TRUE(unknown.ok());
  EXPECT_EQ(unknown->status, 404);
  auto climbing = Sidecar("GET", "/v1/integrations/slack-api/a/%2e%2e/secret");
  ASSERT_TRUE(climbing.ok());
  EXPECT_EQ(climbing->status, 400);
  EXPECT_EQ(upstream.requests(), 2);
}

TEST_F(SidecarTest, AJobsTraceContinuesIntoTheIntegrationCall) {
  UpstreamServer upstream;
  ASSERT_NO_FATAL_FAILURE(Start(Integration("api", upstream, "")));
  const std::string trace = "4bf92f3577b34da6a3ce929d0e0e4736";
  HttpRequest req;
  req.url = "http://127.0.0.1:" + std::to_string(port_) + "/hooks/calls";
  req.body = R"({"id":"t1","call":"/v1/integrations/api/ping"})";
  req.headers = {{"X-Signature", HmacSha256Hex(kSecret, req.body)},
                 {"Content-Type", "application/json"},
                 {"traceparent", "00-" + trace + "-00f067aa0ba902b7-01"}};
  auto res = HttpCall(req);
  ASSERT_TRUE(res.ok() && res->status == 200);
  ASSERT_TRUE(WaitRecords("calls", 1, milliseconds(10'000)));
  auto seen = upstream.Requests();
  ASSERT_EQ(seen.size(), 1u);
  // The handler sent only X-Firebreak-Job-Id: the sidecar continued the job's trace.
  std::string traceparent = seen[0].Header("traceparent");
  EXPECT_EQ(traceparent.substr(0, 36), "00-" + trace + "-");
  EXPECT_NE(traceparent.substr(36, 16), "00f067aa0ba902b7");  // a child span
  EXPECT_FALSE(seen[0].Header("x-firebreak-job-id").empty());
}

// Sessions and state on every store backend: one test body.
class SidecarStoreTest : public SidecarTest, public ::testing::WithParamInterface<std::string> {};

TEST_P(SidecarStoreTest, SessionsExpireAfterTheirTtlAndStateSurvivesRestart) {
  RedisServer redis;
  PostgresServer postgres;
  std::string store;
  if (GetParam() == "redis") {
    ASSERT_TRUE(redis.Start()) << redis.Log();
    store = "[store]\nsessions = \"redis\"\nsessions_url = \"" + redis.Url(1) + "\"\n";
  } else if (GetParam() == "postgres") {
    ASSERT_TRUE(postgres.Start()) << postgres.Log();
    store = "[store]\nstate = \"postgres\"\nstate_url = \"" + postgres.Url() + "\"\n";
  }
  ASSERT_NO_FATAL_FAILURE(Start("", store));

  auto put = Sidecar("PUT", "/v1/sessions/conv%3AC1%3AU1?ttl=1s", "{\"turn\":1}",
                     {{"Content-Type", "application/json"}});
  ASSERT_TRUE(put.ok()) << put.status().ToString() << process_->Log();
  EXPECT_EQ(put->status, 201) << put->body;
  EXPECT_EQ(put->Header("ETag"), "\"1\"");
  auto state = Sidecar("PUT", "/v1/state/team/T1", "{\"plan\":\"pro\"}",
                       {{"Content-Type", "application/json"}});
  ASSERT_TRUE(state.ok());
  EXPECT_EQ(state->status, 201) << state->body;

  auto session = Sidecar("GET", "/v1/sessions/conv%3AC1%3AU1");
  ASSERT_TRUE(session.ok());
  EXPECT_EQ(session->status, 200);
  EXPECT_EQ(session->body, "{\"turn\":1}");
  EXPECT_EQ(session->Header("Content-Type"), "application/json");
  EXPECT_FALSE(session->Header("X-Firebreak-Expires-At").empty());

  // Compare-and-set: a stale version loses, the current one wins.
  auto stale = Sidecar("PUT", "/v1/state/team/T1", "{\"plan\":\"free\"}", {{"If-Match", "\"7\""}});
  ASSERT_TRUE(stale.ok());
  EXPECT_EQ(stale->status, 412);
  auto current = Sidecar("PUT", "/v1/state/team/T1", "{\"plan\":\"enterprise\"}",
                         {{"If-Match", "\"1\""}, {"Content-Type", "application/json"}});
  ASSERT_TRUE(current.ok());
  EXPECT_EQ(current->status, 200);
  EXPECT_EQ(current->Header("ETag"), "\"2\"");
  auto create_only = Sidecar("PUT", "/v1/state/team/T1", "x", {{"If-None-Match", "*"}});
  ASSERT_TRUE(create_only.ok());
  EXPECT_EQ(create_only->status, 412);

  std::this_thread::sleep_for(milliseconds(1500));
  auto expired = Sidecar("GET", "/v1/sessions/conv%3AC1%3AU1");
  ASSERT_TRUE(expired.ok());
  EXPECT_EQ(expired->status, 404);

  // Restart firebreak: state is still there, at the version it had.
  sidecar_.reset();
  ASSERT_EQ(process_->Terminate(), 0) << process_->Log();
  process_ = std::make_unique<FirebreakProcess>("run", config_, dir_.File("log2.txt"), port_);
  ASSERT_TRUE(process_->Start()) << process_->Log();
  auto after = Sidecar("GET", "/v1/state/team/T1");
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->status, 200);
  EXPECT_EQ(after->body, "{\"plan\":\"enterprise\"}");
  EXPECT_EQ(after->Header("ETag"), "\"2\"");
  auto deleted = Sidecar("DELETE", "/v1/state/team/T1");
  ASSERT_TRUE(deleted.ok());
  EXPECT_EQ(deleted->status, 204);
  EXPECT_EQ(Sidecar("GET", "/v1/state/team/T1")->status, 404);
  // Bad requests get a clear 4xx.
  EXPECT_EQ(Sidecar("PUT", "/v1/state/x?ttl=1s", "v")->status, 400);
  EXPECT_EQ(Sidecar("PUT", "/v1/sessions/x?ttl=forever", "v")->status, 400);
  EXPECT_EQ(Sidecar("POST", "/v1/state/x", "v")->status, 405);
}

INSTANTIATE_TEST_SUITE_P(Stores, SidecarStoreTest,
                         ::testing::Values("sqlite", "redis", "postgres"),
                         [](const ::testing::TestParamInfo<std::string>& param) {
                           return param.param;
                         });

}  // namespace
}  // namespace firebreak::testing
