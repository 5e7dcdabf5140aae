// Egress against a simulated upstream (a real HTTP server in this process): timeouts
// with real cancellation, the breaker's full cycle, the concurrency cap, the rate limit,
// Retry-After, auth injection and connection reuse.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <future>
#include <mutex>
#include <thread>

#include "egress/egress.h"
#include "support/upstream_server.h"
#include "telemetry/metrics.h"

namespace firebreak::egress {
namespace {

using std::chrono::milliseconds;
using testing::UpstreamReply;
using testing::UpstreamRequest;
using testing::UpstreamServer;
using Clock = std::chrono::steady_clock;

IntegrationConfig Api(const UpstreamServer& upstream) {
  IntegrationConfig config;
  config.name = "api";
  config.base_url = upstream.Url();
  config.timeout = milliseconds(2000);
  config.retry.attempts = 1;
  // These tests are about one process's policies; shared limits have their own
  // (limit_store_contract_test.cc, shared_limits_test.cc).
  config.limits = IntegrationConfig::Limits::kProcess;
  return config;
}

// Collects results of asynchronous calls, with the time each one took.
class Calls {
 public:
  struct Done {
    EgressResult result;
    Clock::duration took;
  };

  Integration::Callback Track() {
    auto started = Clock::now();
    {
      std::lock_guard lock(mu_);
      ++expected_;
    }
    return [this, started](EgressResult result) {
      std::lock_guard lock(mu_);
      done_.push_back({std::move(result), Clock::now() - started});
      cv_.notify_all();
    };
  }

  // Waits for every tracked call (up to `timeout`).
  std::vector<Done> Wait(milliseconds timeout = milliseconds(30'000)) {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, timeout, [&] { return done_.size() >= expected_; });
    return done_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  size_t expected_ = 0;
  std::vector<Done> done_;
};

EgressCall Get(std::string target = "/thing") {
  EgressCall call;
  call.method = "GET";
  call.target = std::move(target);
  return call;
}

EgressResult CallOnce(Egress& egress, EgressCall call, Clock::duration* took = nullptr) {
  Calls calls;
  egress.Call("api", std::move(call), calls.Track());
  auto done = calls.Wait();
  if (took != nullptr) *took = done.at(0).took;
  return done.at(0).result;
}

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

struct Fixture {
  explicit Fixture(IntegrationConfig integration) {
    config.integrations.push_back(std::move(integration));
    egress = std::make_unique<Egress>(config, metrics);
    egress->Start();
  }
  Config config;
  Metrics metrics;
  std::unique_ptr<Egress> egress;
};

TEST(EgressTest, ForwardsTheRequestWithInjectedAuthAndTraceHeaders) {
  UpstreamServer upstream([](const UpstreamRequest& req) {
    return UpstreamReply{201, {{"X-Upstream", "yes"}}, "{\"echo\":\"" + req.body + "\"}"};
  });
  IntegrationConfig config = Api(upstream);
  config.base_url += "/prefix";
  config.auth = IntegrationAuth{IntegrationAuth::Kind::kBearer, "", Secret{}, ""};
  config.auth->secret.value = "s3cret-token";
  Fixture f(config);

  EgressCall call;
  call.method = "POST";
  call.target = "/api/chat.postMessage?x=1";
  call.headers = {{"Content-Type", "application/json"},
                  {"Authorization", "Bearer from-the-handler"},
                  {"Connection", "close"},
                  {"X-Custom", "kept"}};
  call.body = "hello";
  call.traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
  call.job_id = "01JOB";
  call.idempotency_key = "01JOB:0";
  EgressResult result = CallOnce(*f.egress, call);
  ASSERT_EQ(result.kind, EgressResult::Kind::kResponse) << result.error;
  EXPECT_EQ(result.status, 201);
  EXPECT_EQ(result.body, "{\"echo\":\"hello\"}");
  EXPECT_EQ(result.attempts, 1);
  bool saw_upstream_header = false;
  for (auto& [name, value] : result.headers) saw_upstream_header |= name == "x-upstream";
  EXPECT_TRUE(saw_upstream_header);

  auto requests = upstream.Requests();
  ASSERT_EQ(requests.size(), 1u);
  const UpstreamRequest& seen = requests[0];
  EXPECT_EQ(seen.method, "POST");
  EXPECT_EQ(seen.target, "/prefix/api/chat.postMessage?x=1");
  EXPECT_EQ(seen.Header("authorization"), "Bearer s3cret-token");  // the handler's is replaced
  // The call's own span: the caller's trace, a new span id, the caller's flags.
  std::string sent_traceparent = seen.Header("traceparent");
  EXPECT_EQ(sent_traceparent.substr(0, 36), call.traceparent.substr(0, 36));
  EXPECT_NE(sent_traceparent.substr(36, 16), call.traceparent.substr(36, 16));
  EXPECT_EQ(sent_traceparent.substr(52), "-01");
  EXPECT_EQ(seen.Header("x-firebreak-job-id"), "01JOB");
  EXPECT_EQ(seen.Header("idempotency-key"), "01JOB:0");
  EXPECT_EQ(seen.Header("x-custom"), "kept");
  EXPECT_EQ(seen.Header("content-type"), "application/json");
  EXPECT_EQ(seen.Header("connection"), "");  // hop-by-hop headers stay behind
  EXPECT_EQ(seen.body, "hello");
}

TEST(EgressTest, HeaderAuthAndConnectionReuse) {
  UpstreamServer upstream;
  IntegrationConfig config = Api(upstream);
  config.auth = IntegrationAuth{IntegrationAuth::Kind::kHeader, "X-Api-Key", Secret{}, ""};
  config.auth->secret.value = "k-123";
  Fixture f(config);
  for (int i = 0; i < 20; ++i) {
    EgressResult result = CallOnce(*f.egress, Get());
    ASSERT_EQ(result.status, 200) << result.error;
  }
  EXPECT_EQ(upstream.Requests().back().Header("x-api-key"), "k-123");
  EXPECT_EQ(upstream.connections(), 1);  // one kept-alive connection for all 20 calls
}

// Telegram's Bot API takes its token in the path: https://api.telegram.org/bot<token>/getMe.
TEST(EgressTest, PathAuthPutsTheSecretBeforeTheHandlersPathAndKeepsItsAuthorization) {
  UpstreamServer upstream;
  IntegrationConfig config = Api(upstream);
  config.auth = IntegrationAuth{IntegrationAuth::Kind::kPath, "", Secret{}, "/bot"};
  config.auth->secret.value = "123:ABC";
  Fixture f(config);
  EgressCall call = Get();
  call.target = "/sendMessage?chat_id=7";
  call.headers = {{"Authorization", "Basic from-the-handler"}};
  EgressResult result = CallOnce(*f.egress, call);
  ASSERT_EQ(result.status, 200) << result.error;
  ASSERT_EQ(upstream.Requests().size(), 1u);
  EXPECT_EQ(upstream.Requests()[0].target, "/bot123:ABC/sendMessage?chat_id=7");
  // No credential header of firebreak's own, so the handler's is passed through.
  EXPECT_EQ(upstream.Requests()[0].Header("authorization"), "Basic from-the-handler");
}

TEST(EgressTest, AHangingUpstreamTimesOutEveryAttemptAndTheConnectionIsClosed) {
  UpstreamServer upstream([](const UpstreamRequest&) {
    UpstreamReply reply;
    reply.hang = true;
    return reply;
  });
  IntegrationConfig config = Api(upstream);
  config.timeout = milliseconds(300);
  config.retry.attempts = 3;
  config.retry.backoff = {milliseconds(50)};
  config.retry.jitter = false;
  config.breaker.min_calls = 1000;  // keep the breaker out of this test
  Fixture f(config);

  // Idempotent: three attempts, each ended by its own timeout.
  Clock::duration took{};
  EgressResult get = CallOnce(*f.egress, Get(), &took);
  EXPECT_EQ(get.kind, EgressResult::Kind::kTimeout);
  EXPECT_EQ(get.attempts, 3);
  EXPECT_GE(Ms(took), 3 * 300 + 2 * 50 - 5);
  EXPECT_LT(Ms(took), 3 * 300 + 2 * 50 + 400);
  // Real cancellation: the upstream saw each connection closed by the client.
  EXPECT_TRUE([&] {
    for (int i = 0; i < 100 && upstream.abandoned() < 3; ++i) {
      std::this_thread::sleep_for(milliseconds(10));
    }
    return upstream.abandoned() == 3;
  }());
  // ...by an abort (RST), so nothing the kernel still held for them goes out later.
  EXPECT_EQ(upstream.aborted(), 3);

  // Not idempotent and no Idempotency-Key: one attempt, returned at its timeout.
  EgressCall post = Get();
  post.method = "POST";
  post.body = "{}";
  EgressResult once = CallOnce(*f.egress, post, &took);
  EXPECT_EQ(once.kind, EgressResult::Kind::kTimeout);
  EXPECT_EQ(once.attempts, 1);
  EXPECT_GE(Ms(took), 295);
  EXPECT_LT(Ms(took), 300 + 300);
  std::string scrape = f.metrics.Serialize();
  EXPECT_NE(scrape.find("firebreak_integration_requests_total{integration=\"api\",outcome=\"timeout\"} 4"),
            std::string::npos)
      << scrape;
}

TEST(EgressTest, BreakerOpensRejectsFastProbesAndClosesWhenTheUpstreamRecovers) {
  std::atomic<bool> healthy{false};
  UpstreamServer upstream([&](const UpstreamRequest&) {
    return healthy ? UpstreamReply{} : UpstreamReply{500, {}, "{\"error\":\"down\"}"};
  });
  IntegrationConfig config = Api(upstream);
  config.breaker.min_calls = 10;
  config.breaker.failure_rate = 0.5;
  config.breaker.window = milliseconds(30'000);
  config.breaker.open_for = milliseconds(500);
  Fixture f(config);

  for (int i = 0; i < 10; ++i) {
    EgressResult result = CallOnce(*f.egress, Get());
    ASSERT_EQ(result.kind, EgressResult::Kind::kResponse);
    EXPECT_EQ(result.status, 500);
  }
  EXPECT_EQ(upstream.requests(), 10);
  EXPECT_NE(f.metrics.Serialize().find("firebreak_circuit_breaker_state{integration=\"api\"} 2"),
            std::string::npos);

  // Open: refused without touching the upstream, each in well under a millisecond.
  std::vector<double> took_ms;
  for (int i = 0; i < 200; ++i) {
    Clock::duration took{};
    EgressResult result = CallOnce(*f.egress, Get(), &took);
    ASSERT_EQ(result.kind, EgressResult::Kind::kRejectedOpen);
    ASSERT_TRUE(result.retry_after.has_value());
    EXPECT_LE(result.retry_after->count(), 500);
    took_ms.push_back(Ms(took));
  }
  std::sort(took_ms.begin(), took_ms.end());
  EXPECT_LT(took_ms[took_ms.size() / 2], 1.0) << "median rejection " << took_ms[took_ms.size() / 2];
  EXPECT_LT(took_ms[took_ms.size() * 99 / 100], 5.0);
  EXPECT_EQ(upstream.requests(), 10);

  // After open_for the breaker half-opens by itself (gauge 1); a failing probe reopens it.
  std::this_thread::sleep_for(milliseconds(600));
  EXPECT_NE(f.metrics.Serialize().find("firebreak_circuit_breaker_state{integration=\"api\"} 1"),
            std::string::npos);
  EXPECT_EQ(CallOnce(*f.egress, Get()).status, 500);
  EXPECT_EQ(upstream.requests(), 11);
  EXPECT_EQ(CallOnce(*f.egress, Get()).kind, EgressResult::Kind::kRejectedOpen);

  // The upstream recovers: the next probe succeeds and closes the breaker.
  healthy = true;
  std::this_thread::sleep_for(milliseconds(600));
  EXPECT_EQ(CallOnce(*f.egress, Get()).status, 200);
  EXPECT_EQ(CallOnce(*f.egress, Get()).status, 200);
  EXPECT_EQ(upstream.requests(), 13);
  std::string scrape = f.metrics.Serialize();
  EXPECT_NE(scrape.find("firebreak_circuit_breaker_state{integration=\"api\"} 0"),
            std::string::npos);
  EXPECT_NE(
      scrape.find("firebreak_integration_requests_total{integration=\"api\",outcome=\"rejected_open\"} 201"),
      std::string::npos)
      << scrape;
}

TEST(EgressTest, ConcurrencyCapHoldsUnderFiveHundredSimultaneousCalls) {
  UpstreamServer upstream(
      [](const UpstreamRequest&) {
        UpstreamReply reply;
        reply.delay = milliseconds(50);
        return reply;
      },
      4);
  IntegrationConfig config = Api(upstream);
  config.max_concurrency = 40;
  config.max_queue = 1000;
  config.timeout = milliseconds(10'000);
  Fixture f(config);

  Calls calls;
  for (int i = 0; i < 500; ++i) f.egress->Call("api", Get(), calls.Track());
  auto done = calls.Wait();
  ASSERT_EQ(done.size(), 500u);
  for (const auto& d : done) ASSERT_EQ(d.result.status, 200) << d.result.error;
  EXPECT_EQ(upstream.requests(), 500);
  EXPECT_LE(upstream.peak_in_flight(), 40);
  EXPECT_GE(upstream.peak_in_flight(), 30);  // and the cap is actually used
}

TEST(EgressTest, BeyondTheQueueBoundCallsAreRejectedAtOnce) {
  UpstreamServer upstream([](const UpstreamRequest&) {
    UpstreamReply reply;
    reply.delay = milliseconds(300);
    return reply;
  });
  IntegrationConfig config = Api(upstream);
  config.max_concurrency = 1;
  config.max_queue = 1;
  Fixture f(config);
  Calls calls;
  for (int i = 0; i < 3; ++i) f.egress->Call("api", Get(), calls.Track());
  auto done = calls.Wait();
  ASSERT_EQ(done.size(), 3u);
  // The third finishes first, refused at once.
  EXPECT_EQ(done[0].result.kind, EgressResult::Kind::kRejectedFull);
  EXPECT_LT(Ms(done[0].took), 50);
  EXPECT_EQ(done[1].result.status, 200);
  EXPECT_EQ(done[2].result.status, 200);
  EXPECT_GE(Ms(done[2].took), 590);
}

TEST(EgressTest, RateLimitHoldsWithinTenPercentOverTenSeconds) {
  UpstreamServer upstream;
  IntegrationConfig config = Api(upstream);
  config.rate_limit = RateLimitConfig{"50/s", 50, 1};
  config.timeout = milliseconds(12'000);  // a call may wait this long for its token
  config.max_concurrency = 1000;
  Fixture f(config);
  Calls calls;
  // 600 tokens arrive within 12 s; the 50 calls beyond them are refused at once.
  for (int i = 0; i < 650; ++i) f.egress->Call("api", Get(), calls.Track());
  auto done = calls.Wait(milliseconds(20'000));
  ASSERT_EQ(done.size(), 650u);
  std::vector<UpstreamRequest> seen = upstream.Requests();
  ASSERT_GE(seen.size(), 550u);
  Clock::time_point first = seen.front().at;
  int64_t in_ten_seconds = std::count_if(seen.begin(), seen.end(), [&](const UpstreamRequest& r) {
    return r.at - first < std::chrono::seconds(10);
  });
  EXPECT_GE(in_ten_seconds, 450);
  EXPECT_LE(in_ten_seconds, 550);
  // No five-second window exceeds the rate by more than 10% either. The times are when the
  // upstream saw each request, so they carry the loaded test machine's scheduling stalls: a
  // 300 ms stall bunches 15 requests, which a one-second window would count as a burst (CI saw
  // 66 in one second while the ten-second count was exact); over five seconds it stays in 10%.
  size_t j = 0;
  size_t busiest = 0;
  for (size_t i = 0; i < seen.size(); ++i) {
    while (seen[i].at - seen[j].at >= std::chrono::seconds(5)) ++j;
    busiest = std::max(busiest, i - j + 1);
  }
  EXPECT_LE(busiest, 275u);
  int64_t limited = std::count_if(done.begin(), done.end(), [](const Calls::Done& d) {
    return d.result.kind == EgressResult::Kind::kRateLimited;
  });
  EXPECT_EQ(limited + static_cast<int64_t>(seen.size()), 650);
  EXPECT_GE(limited, 40);
  EXPECT_LE(limited, 51);
  std::cout << "rate limit 50/s: " << in_ten_seconds << " requests in the first 10 s ("
            << in_ten_seconds / 10.0 << "/s), busiest 5 s window " << busiest << ", refused "
            << limited << "\n";
}

TEST(EgressTest, RetryAfterKeepsEveryCallAwayFromTheUpstreamUntilItPasses) {
  std::atomic<int> answered{0};
  UpstreamServer upstream([&](const UpstreamRequest&) {
    if (answered++ == 0) return UpstreamReply{429, {{"Retry-After", "1"}}, "{\"ok\":false}"};
    return UpstreamReply{};
  });
  IntegrationConfig config = Api(upstream);
  config.retry.attempts = 3;
  config.retry.backoff = {milliseconds(100), milliseconds(2000)};
  Fixture f(config);
  Calls calls;
  f.egress->Call("api", Get("/first"), calls.Track());
  std::this_thread::sleep_for(milliseconds(200));
  f.egress->Call("api", Get("/second"), calls.Track());  // arrives during the pause
  auto done = calls.Wait();
  ASSERT_EQ(done.size(), 2u);
  for (const auto& d : done) EXPECT_EQ(d.result.status, 200);
  auto seen = upstream.Requests();
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_EQ(seen[0].target, "/first");
  for (size_t i = 1; i < seen.size(); ++i) {
    EXPECT_GE(seen[i].at - seen[0].at, milliseconds(1000)) << seen[i].target;
  }
}

TEST(EgressTest, ARetryAfterLongerThanTheBackoffGoesBackToTheCaller) {
  UpstreamServer upstream([](const UpstreamRequest&) {
    return UpstreamReply{429, {{"Retry-After", "30"}}, "{\"ok\":false}"};
  });
  IntegrationConfig config = Api(upstream);
  config.retry.attempts = 3;
  Fixture f(config);
  Clock::duration took{};
  EgressResult result = CallOnce(*f.egress, Get(), &took);
  EXPECT_EQ(result.status, 429);
  ASSERT_TRUE(result.retry_after.has_value());
  EXPECT_EQ(result.retry_after->count(), 30'000);
  EXPECT_LT(Ms(took), 500);
  // ...and later calls are refused locally instead of hitting the upstream again.
  EgressResult next = CallOnce(*f.egress, Get());
  EXPECT_EQ(next.kind, EgressResult::Kind::kRateLimited);
  EXPECT_EQ(upstream.requests(), 1);
}

TEST(EgressTest, AConnectionRefusedIsRetriedEvenForAPost) {
  uint16_t closed_port = 0;
  {
    UpstreamServer gone;
    closed_port = gone.port();
  }
  IntegrationConfig config;
  config.name = "api";
  config.base_url = "http://127.0.0.1:" + std::to_string(closed_port);
  config.retry.attempts = 2;
  config.retry.backoff = {milliseconds(10)};
  Fixture f(config);
  EgressCall post = Get();
  post.method = "POST";
  EgressResult result = CallOnce(*f.egress, post);
  EXPECT_EQ(result.kind, EgressResult::Kind::kConnectionError);
  EXPECT_EQ(result.attempts, 2);
}

TEST(EgressTest, StopAnswersRunningCallsWithShutdown) {
  UpstreamServer upstream([](const UpstreamRequest&) {
    UpstreamReply reply;
    reply.hang = true;
    return reply;
  });
  IntegrationConfig config = Api(upstream);
  config.timeout = milliseconds(30'000);
  Fixture f(config);
  Calls calls;
  f.egress->Call("api", Get(), calls.Track());
  for (int i = 0; i < 100 && upstream.requests() == 0; ++i) std::this_thread::sleep_for(milliseconds(10));
  f.egress->Stop();
  auto done = calls.Wait(milliseconds(2000));
  ASSERT_EQ(done.size(), 1u);
  EXPECT_EQ(done[0].result.kind, EgressResult::Kind::kShutdown);
}

}  // namespace
}  // namespace firebreak::egress
