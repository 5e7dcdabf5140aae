// The pure parts of shared egress limits (lease arithmetic, GCRA, the breaker row, reply
// parsing), the config keys, and two Egress objects — two "processes" — sharing one
// SQLite limits file, plus the fallback when the store is unreachable.
#include <gtest/gtest.h>
#include <hiredis/hiredis.h>

#include <atomic>
#include <cstdio>
#include <thread>

#include "config/config.h"
#include "egress/egress.h"
#include "egress/shared/limit_store.h"
#include "egress/shared/redis/redis_limit_store.h"
#include "egress/shared/sqlite/sqlite_limit_store.h"
#include "support/process.h"
#include "support/upstream_server.h"
#include "queue_test_util.h"
#include "telemetry/metrics.h"

namespace firebreak::egress {
namespace {

using std::chrono::milliseconds;
using testing::UpstreamReply;
using testing::UpstreamRequest;
using testing::UpstreamServer;

TEST(LeaseArithmeticTest, ExpiryRenewalAndGrants) {
  EXPECT_EQ(LeaseExpiry(1'000, 5'000), 6'000);
  EXPECT_TRUE(LeaseExpired(6'000, 6'000));  // a lease ends at its expiry, not after
  EXPECT_FALSE(LeaseExpired(6'000, 5'999));
  EXPECT_EQ(LeaseRenewInterval(3'000), 1'000);
  EXPECT_EQ(LeaseRenewInterval(60), 50);  // never a busy loop
  EXPECT_EQ(LeasesGrantable(38, 40, 5), 2);
  EXPECT_EQ(LeasesGrantable(40, 40, 5), 0);
  EXPECT_EQ(LeasesGrantable(45, 40, 5), 0);  // over (a store that lost leases): none
  EXPECT_EQ(LeasesGrantable(0, 40, 3), 3);
}

TEST(GcraTest, SpacesCallsAtTheRateAfterTheBurst) {
  RateLimitConfig rate{"50/s", 50, 1};
  GcraParams params = GcraFor(rate);
  EXPECT_EQ(params.interval_us, 20'000);
  EXPECT_EQ(params.tolerance_us, 0);
  int64_t tat = 0;
  const int64_t now = 1'000'000'000;
  std::vector<int64_t> waits;
  for (int i = 0; i < 5; ++i) {
    GcraDecision d = GcraReserve(tat, now, params, 1'000'000);
    ASSERT_TRUE(d.allowed);
    waits.push_back(d.wait_us);
    tat = d.new_tat_us;
  }
  EXPECT_EQ(waits, (std::vector<int64_t>{0, 20'000, 40'000, 60'000, 80'000}));
  // A wait beyond the caller's bound is refused and reserves nothing.
  GcraDecision refused = GcraReserve(tat, now, params, 50'000);
  EXPECT_FALSE(refused.allowed);
  EXPECT_EQ(refused.wait_us, 100'000);
  EXPECT_EQ(refused.new_tat_us, tat);
  EXPECT_DOUBLE_EQ(GcraTokens(tat, now, params), 1 - 5.0);

  // burst 3: three at once, then spaced.
  GcraParams burst = GcraFor(RateLimitConfig{"10/s", 10, 3});
  tat = 0;
  std::vector<int64_t> burst_waits;
  for (int i = 0; i < 5; ++i) {
    GcraDecision d = GcraReserve(tat, now, burst, 10'000'000);
    burst_waits.push_back(d.wait_us);
    tat = d.new_tat_us;
  }
  EXPECT_EQ(burst_waits, (std::vector<int64_t>{0, 0, 0, 100'000, 200'000}));
  EXPECT_DOUBLE_EQ(GcraTokens(0, now, burst), 3);
}

TEST(GcraTest, AnyOneSecondWindowHoldsAtMostRatePlusOne) {
  // Callers arriving at random moments, each sent at its reserved time.
  GcraParams params = GcraFor(RateLimitConfig{"50/s", 50, 1});
  std::mt19937 rng(7);
  int64_t tat = 0;
  int64_t now = 0;
  std::vector<int64_t> sends;
  for (int i = 0; i < 2'000; ++i) {
    now += static_cast<int64_t>(rng() % 40'000);
    GcraDecision d = GcraReserve(tat, now, params, 5'000'000);
    if (!d.allowed) continue;
    tat = d.new_tat_us;
    sends.push_back(now + d.wait_us);
  }
  std::sort(sends.begin(), sends.end());
  size_t most = 0;
  for (size_t i = 0, j = 0; i < sends.size(); ++i) {
    while (sends[i] - sends[j] >= 1'000'000) ++j;
    most = std::max(most, i - j + 1);
  }
  EXPECT_LE(most, 51u);
  EXPECT_GE(most, 45u);
}

CircuitBreakerConfig Breaker() {
  CircuitBreakerConfig config;
  config.failure_rate = 0.5;
  config.min_calls = 4;
  config.window = milliseconds(10'000);
  config.open_for = milliseconds(1'000);
  return config;
}

TEST(SharedBreakerRowTest, OpensHalfOpensProbesOnceAndCloses) {
  SharedBreakerRow row;
  const CircuitBreakerConfig config = Breaker();
  int64_t now = 1'700'000'000'000;
  EXPECT_FALSE(SharedBreakerRecord(row, config, now, CallVerdict::kSuccess, false).changed);
  EXPECT_FALSE(SharedBreakerRecord(row, config, now, CallVerdict::kFailure, false).changed);
  EXPECT_FALSE(SharedBreakerRecord(row, config, now, CallVerdict::kAbandoned, false).changed);
  EXPECT_FALSE(SharedBreakerRecord(row, config, now + 1, CallVerdict::kFailure, false).changed);
  SharedBreakerView opened = SharedBreakerRecord(row, config, now + 2, CallVerdict::kFailure, false);
  EXPECT_TRUE(opened.changed);
  EXPECT_EQ(opened.state, BreakerState::kOpen);
  EXPECT_EQ(opened.open_left_ms, 1'000);
  EXPECT_EQ(opened.calls, 4);  // the abandoned call did not count
  EXPECT_EQ(opened.failures, 3);
  EXPECT_FALSE(opened.allowed);

  EXPECT_FALSE(SharedBreakerClaimProbe(row, now + 500, 2'000).allowed);
  SharedBreakerView probe = SharedBreakerClaimProbe(row, now + 1'002, 2'000);
  EXPECT_TRUE(probe.probe);
  EXPECT_EQ(probe.state, BreakerState::kHalfOpen);
  EXPECT_FALSE(SharedBreakerClaimProbe(row, now + 1'003, 2'000).allowed);  // one probe
  // The probe's holder vanished: after its lease another process may probe.
  EXPECT_TRUE(SharedBreakerClaimProbe(row, now + 3'003, 2'000).probe);
  SharedBreakerView reopened =
      SharedBreakerRecord(row, config, now + 3'010, CallVerdict::kFailure, true);
  EXPECT_TRUE(reopened.changed);
  EXPECT_EQ(reopened.state, BreakerState::kOpen);
  EXPECT_TRUE(SharedBreakerClaimProbe(row, now + 4'010, 2'000).probe);
  SharedBreakerView closed = SharedBreakerRecord(row, config, now + 4'020, CallVerdict::kSuccess, true);
  EXPECT_TRUE(closed.changed);
  EXPECT_EQ(closed.state, BreakerState::kClosed);
  EXPECT_EQ(closed.calls, 0);  // an empty window after closing
}

TEST(SharedBreakerRowTest, OldOutcomesLeaveTheWindow) {
  SharedBreakerRow row;
  const CircuitBreakerConfig config = Breaker();
  int64_t now = 1'700'000'000'000;
  for (int i = 0; i < 3; ++i) SharedBreakerRecord(row, config, now, CallVerdict::kFailure, false);
  // 11 s later the three failures are out of the 10 s window: one more does not open it.
  SharedBreakerView view = SharedBreakerRecord(row, config, now + 11'000, CallVerdict::kFailure, false);
  EXPECT_EQ(view.state, BreakerState::kClosed);
  EXPECT_EQ(view.calls, 1);
  SharedBreakerRow copy;
  DecodeBuckets(EncodeBuckets(row), copy);
  EXPECT_EQ(SharedBreakerRead(copy, config, now + 11'000).calls, 1);
  DecodeBuckets("garbage", copy);
  EXPECT_EQ(SharedBreakerRead(copy, config, now + 11'000).calls, 0);
}

TEST(ReplyParsingTest, BreakerFieldsRoundTripAndBadRepliesAreErrors) {
  SharedBreakerView view;
  view.state = BreakerState::kHalfOpen;
  view.open_left_ms = 12;
  view.calls = 30;
  view.failures = 16;
  view.probe = true;
  view.allowed = true;
  std::vector<int64_t> fields = {99, 98};
  for (int64_t f : BreakerFields(view)) fields.push_back(f);
  auto parsed = ParseBreakerFields(fields, 2);
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(parsed->state, BreakerState::kHalfOpen);
  EXPECT_EQ(parsed->open_left_ms, 12);
  EXPECT_EQ(parsed->calls, 30);
  EXPECT_EQ(parsed->failures, 16);
  EXPECT_TRUE(parsed->probe);
  EXPECT_TRUE(parsed->allowed);
  EXPECT_FALSE(parsed->changed);
  EXPECT_FALSE(ParseBreakerFields({0, 1, 2}, 0).ok());           // short
  EXPECT_FALSE(ParseBreakerFields({7, 0, 0, 0, 0, 0, 0}, 0).ok());  // no such state

  redisReply one{};
  one.type = REDIS_REPLY_INTEGER;
  one.integer = 42;
  EXPECT_EQ(*ParseIntegerReply(&one), std::vector<int64_t>{42});
  redisReply a{}, b{};
  a.type = REDIS_REPLY_INTEGER;
  a.integer = 3;
  b.type = REDIS_REPLY_INTEGER;
  b.integer = -1;
  redisReply* elements[] = {&a, &b};
  redisReply array{};
  array.type = REDIS_REPLY_ARRAY;
  array.elements = 2;
  array.element = elements;
  EXPECT_EQ(*ParseIntegerReply(&array), (std::vector<int64_t>{3, -1}));
  b.type = REDIS_REPLY_NIL;
  EXPECT_FALSE(ParseIntegerReply(&array).ok());
  redisReply error{};
  char text[] = "ERR boom";
  error.type = REDIS_REPLY_ERROR;
  error.str = text;
  error.len = 8;
  EXPECT_FALSE(ParseIntegerReply(&error).ok());
  EXPECT_FALSE(ParseIntegerReply(nullptr).ok());
}

TEST(SharedLimitsConfigTest, LimitsAndLeaseAreParsedAndCheckedWithFileLineAndKey) {
  queue_test::TempDir dir;
  auto load = [&](const std::string& keys) {
    return ParseConfig(
        "[[integrations]]\nname = \"llm\"\nbase_url = \"http://127.0.0.1:9\"\n" + keys,
        dir.path() + "/c.toml");
  };
  auto defaults = load("");
  ASSERT_TRUE(defaults.ok()) << defaults.status().ToString();
  EXPECT_EQ(defaults->integrations[0].limits, IntegrationConfig::Limits::kShared);
  EXPECT_EQ(defaults->integrations[0].shared_lease, milliseconds(5'000));
  auto process = load("limits = \"process\"\nshared_lease = \"2s\"\n");
  ASSERT_TRUE(process.ok()) << process.status().ToString();
  EXPECT_EQ(process->integrations[0].limits, IntegrationConfig::Limits::kProcess);
  EXPECT_EQ(process->integrations[0].shared_lease, milliseconds(2'000));
  auto typo = load("limits = \"global\"\n");
  ASSERT_FALSE(typo.ok());
  EXPECT_NE(typo.status().message().find("c.toml:4:"), std::string::npos) << typo.status().message();
  EXPECT_NE(typo.status().message().find("limits"), std::string::npos);
  auto short_lease = load("shared_lease = \"100ms\"\n");
  ASSERT_FALSE(short_lease.ok());
  EXPECT_NE(short_lease.status().message().find("shared_lease"), std::string::npos);
}

// ---- two Egress objects on one limits file: two processes in one test ----

IntegrationConfig SharedApi(const UpstreamServer& upstream, int max_concurrency) {
  IntegrationConfig config;
  config.name = "api";
  config.base_url = upstream.Url();
  config.timeout = milliseconds(5'000);
  config.retry.attempts = 1;
  config.max_concurrency = max_concurrency;
  config.shared_lease = milliseconds(2'000);
  return config;
}

TEST(SharedEgressTest, TwoProcessesShareOneConcurrencyCap) {
  UpstreamServer upstream(
      [](const UpstreamRequest&) {
        UpstreamReply reply;
        reply.delay = milliseconds(50);
        return reply;
      },
      4);
  queue_test::TempDir dir;
  Config config;
  config.queue.path = dir.path() + "/q.db";
  config.integrations.push_back(SharedApi(upstream, 6));
  Metrics metrics_a;
  Metrics metrics_b;
  Egress a(config, metrics_a);
  Egress b(config, metrics_b);
  a.Start();
  b.Start();
  auto limits_of = [](Egress& egress) {
    auto snapshots = egress.Snapshots();
    return snapshots.has_value() ? snapshots->at(0).second.limits : std::string("none");
  };
  // A store call slower than a second makes a process count per process for a while,
  // by design (docs/egress.md): on a machine loaded by the rest of the suite a WAL
  // checkpoint's fsync can take that long. A round in which either process fell back
  // proves nothing about sharing, so it is run again (at most 3 rounds); a round in
  // which both stayed shared must hold the cap exactly.
  int round = 0;
  for (; round < 3; ++round) {
    upstream.ResetStats();
    std::atomic<int> ok{0};
    std::atomic<int> answered{0};
    for (int i = 0; i < 60; ++i) {
      EgressCall call;
      call.target = "/x";
      (i % 2 == 0 ? a : b).Call("api", std::move(call), [&](EgressResult result) {
        if (result.kind == EgressResult::Kind::kResponse && result.status == 200) ++ok;
        ++answered;
      });
    }
    for (int i = 0; i < 200 && answered.load() < 60; ++i) {
      std::this_thread::sleep_for(milliseconds(50));
    }
    EXPECT_EQ(ok.load(), 60);
    if (limits_of(a) == "shared" && limits_of(b) == "shared") break;
    std::printf("round %d: a store call stalled and a process fell back; again\n", round);
    for (int i = 0; i < 100 && (limits_of(a) != "shared" || limits_of(b) != "shared"); ++i) {
      std::this_thread::sleep_for(milliseconds(100));
    }
  }
  ASSERT_LT(round, 3) << "the shared store stalled in every round";
  EXPECT_EQ(upstream.peak_in_flight(), 6);  // 6 shared, not 6 each
  a.Stop();
  b.Stop();
}

TEST(SharedEgressTest, AnUnreachableStoreFallsBackToPerProcessLimitsAtOnce) {
  UpstreamServer upstream;
  Config config;
  config.queue.backend = "redis";
  config.queue.url = "redis://127.0.0.1:" + std::to_string(testing::PickFreePort()) + "/0";
  config.queue.timeout = milliseconds(200);
  config.integrations.push_back(SharedApi(upstream, 3));
  config.integrations[0].rate_limit = RateLimitConfig{"100/s", 100, 5};
  Metrics metrics;
  Egress egress(config, metrics);
  egress.Start();
  std::atomic<int> ok{0};
  std::atomic<int> answered{0};
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 10; ++i) {
    EgressCall call;
    call.target = "/x";
    egress.Call("api", std::move(call), [&](EgressResult result) {
      if (result.kind == EgressResult::Kind::kResponse && result.status == 200) ++ok;
      ++answered;
    });
  }
  for (int i = 0; i < 100 && answered.load() < 10; ++i) std::this_thread::sleep_for(milliseconds(20));
  const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(ok.load(), 10);
  EXPECT_LT(took, 1.5);  // no hang: one failed connect, then per-process limits
  EXPECT_LE(upstream.peak_in_flight(), 3);
  const IntegrationMetrics* m = metrics.FindIntegration("api");
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(m->shared_limits_degraded->Value(), 1);
  auto snapshots = egress.Snapshots();
  ASSERT_TRUE(snapshots.has_value());
  EXPECT_EQ(snapshots->at(0).second.limits, "shared_degraded");
  egress.Stop();
}

}  // namespace
}  // namespace firebreak::egress
