// One contract for both shared-limit stores (docs/egress.md "Shared limits"): sqlite and
// redis run the same bodies, each with two store objects standing for two processes on
// one file / one Redis. Also prints what one acquire+release costs on each.
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "egress/shared/limit_store.h"
#include "egress/shared/redis/redis_limit_store.h"
#include "egress/shared/sqlite/sqlite_limit_store.h"
#include "support/process.h"
#include "support/redis_server.h"
#include "queue_test_util.h"

namespace firebreak::egress {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

class LimitStoreContractTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (GetParam() == "redis") {
      ASSERT_TRUE(redis_.Start()) << redis_.Log();
      queue_.backend = "redis";
      queue_.url = redis_.Url();
    } else {
      queue_.path = dir_.path() + "/q.db";
    }
    a_ = MakeLimitStore(queue_, milliseconds(500));
    b_ = MakeLimitStore(queue_, milliseconds(500));
    // Connected (and the SQLite schema made) before the tests time anything.
    ASSERT_TRUE(a_->Read("warm-up", CircuitBreakerConfig{}, nullptr).ok());
    ASSERT_TRUE(b_->Read("warm-up", CircuitBreakerConfig{}, nullptr).ok());
  }

  static std::vector<std::string> Tokens(const std::string& prefix, int n) {
    std::vector<std::string> out;
    for (int i = 0; i < n; ++i) out.push_back(prefix + std::to_string(i));
    return out;
  }

  queue_test::TempDir dir_;
  testing::RedisServer redis_;
  QueueConfig queue_;
  std::unique_ptr<LimitStore> a_;
  std::unique_ptr<LimitStore> b_;
};

TEST_P(LimitStoreContractTest, LeasesAreCappedAcrossProcessesAndReleased) {
  auto first = a_->Acquire("llm", 5, 10'000, Tokens("a:", 3));
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_EQ(first->granted, 3);
  EXPECT_EQ(first->in_flight, 3);
  auto second = b_->Acquire("llm", 5, 10'000, Tokens("b:", 4));
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  EXPECT_EQ(second->granted, 2);  // b:0 and b:1, in order
  EXPECT_EQ(second->in_flight, 5);
  auto other = b_->Acquire("other", 5, 10'000, Tokens("b:", 1));  // limits are per integration
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(other->granted, 1);
  auto left = a_->Release("llm", {"a:0", "a:1", "never-held"});
  ASSERT_TRUE(left.ok());
  EXPECT_EQ(*left, 3);
  auto again = b_->Acquire("llm", 5, 10'000, {"b:2", "b:3", "b:4"});
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->granted, 2);
  auto view = a_->Read("llm", CircuitBreakerConfig{}, nullptr);
  ASSERT_TRUE(view.ok()) << view.status().ToString();
  EXPECT_EQ(view->in_flight, 5);
  EXPECT_FALSE(view->tokens.has_value());
}

TEST_P(LimitStoreContractTest, ALeaseOfADeadHolderExpiresAndARenewedOneDoesNot) {
  ASSERT_EQ(a_->Acquire("llm", 2, 400, {"dead"})->granted, 1);
  ASSERT_EQ(a_->Acquire("llm", 2, 400, {"alive"})->granted, 1);
  EXPECT_EQ(b_->Acquire("llm", 2, 400, {"b"})->granted, 0);
  const auto start = Clock::now();
  // "alive" renews every 100 ms; "dead" does not.
  int granted = 0;
  while (Clock::now() - start < milliseconds(2'000)) {
    auto renewed = a_->Renew("llm", 400, {"alive"});
    ASSERT_TRUE(renewed.ok()) << renewed.status().ToString();
    EXPECT_EQ(*renewed, 1);
    granted = b_->Acquire("llm", 2, 400, {"b"})->granted;
    if (granted == 1) break;
    std::this_thread::sleep_for(milliseconds(100));
  }
  const double freed_after = std::chrono::duration<double>(Clock::now() - start).count();
  EXPECT_EQ(granted, 1);
  EXPECT_GE(freed_after, 0.25);
  EXPECT_LT(freed_after, 0.8);
  EXPECT_EQ(*a_->Renew("llm", 400, {"dead"}), 0);  // expired leases stay gone
  EXPECT_EQ(a_->Read("llm", CircuitBreakerConfig{}, nullptr)->in_flight, 2);
}

TEST_P(LimitStoreContractTest, TheRateLimitIsOneBucketForEveryProcess) {
  GcraParams params = GcraFor(RateLimitConfig{"20/s", 20, 2});
  std::vector<int64_t> sends;  // when each caller may send, from the first call (µs)
  const auto first = Clock::now();
  for (int i = 0; i < 6; ++i) {
    const auto asked = Clock::now();
    auto r = (i % 2 == 0 ? a_ : b_)->Reserve("llm", params, 1'000'000);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    ASSERT_TRUE(r->allowed);
    sends.push_back(
        std::chrono::duration_cast<std::chrono::microseconds>(asked - first).count() + r->wait_us);
  }
  // burst 2, then every 50 ms, whoever asks (a few ms for the round trips themselves).
  EXPECT_LT(sends[0], 5'000);
  EXPECT_LT(sends[1], 10'000);
  for (size_t i = 2; i < sends.size(); ++i) {
    const int64_t expected = static_cast<int64_t>(i - 1) * 50'000;
    EXPECT_NEAR(sends[i], expected, 8'000) << i;
  }
  auto refused = a_->Reserve("llm", params, 100'000);
  ASSERT_TRUE(refused.ok());
  EXPECT_FALSE(refused->allowed);
  EXPECT_GT(refused->wait_us, 100'000);
  auto view = b_->Read("llm", CircuitBreakerConfig{}, &params);
  ASSERT_TRUE(view.ok());
  ASSERT_TRUE(view->tokens.has_value());
  EXPECT_LT(*view->tokens, -2.5);  // four reservations waiting beyond the burst
}

TEST_P(LimitStoreContractTest, ABreakerOpenedByOneProcessIsOpenForTheOther) {
  CircuitBreakerConfig config;
  config.failure_rate = 0.5;
  config.min_calls = 4;
  config.window = milliseconds(10'000);
  config.open_for = milliseconds(500);
  ASSERT_TRUE(a_->Record("llm", config, CallVerdict::kSuccess, false).ok());
  ASSERT_TRUE(b_->Record("llm", config, CallVerdict::kFailure, false).ok());
  ASSERT_TRUE(a_->Record("llm", config, CallVerdict::kFailure, false).ok());
  auto opened = b_->Record("llm", config, CallVerdict::kFailure, false);
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  EXPECT_TRUE(opened->changed);
  EXPECT_EQ(opened->state, BreakerState::kOpen);
  auto seen = a_->Read("llm", config, nullptr);
  ASSERT_TRUE(seen.ok());
  EXPECT_EQ(seen->breaker.state, BreakerState::kOpen);
  EXPECT_GT(seen->breaker.open_left_ms, 300);
  EXPECT_EQ(seen->breaker.calls, 4);
  EXPECT_EQ(seen->breaker.failures, 3);
  EXPECT_FALSE(a_->ClaimProbe("llm", 5'000)->allowed);

  std::this_thread::sleep_for(milliseconds(600));
  auto probe = a_->ClaimProbe("llm", 5'000);
  ASSERT_TRUE(probe.ok());
  EXPECT_TRUE(probe->probe);
  EXPECT_EQ(probe->state, BreakerState::kHalfOpen);
  auto busy = b_->ClaimProbe("llm", 5'000);
  EXPECT_FALSE(busy->allowed);  // one probe across processes
  EXPECT_FALSE(busy->probe);
  auto closed = a_->Record("llm", config, CallVerdict::kSuccess, true);
  ASSERT_TRUE(closed.ok());
  EXPECT_TRUE(closed->changed);
  EXPECT_EQ(closed->state, BreakerState::kClosed);
  EXPECT_EQ(b_->Read("llm", config, nullptr)->breaker.state, BreakerState::kClosed);
}

TEST_P(LimitStoreContractTest, CostOfOneAcquireAndRelease) {
  const int n = 2'000;
  const auto start = Clock::now();
  for (int i = 0; i < n; ++i) {
    const std::string token = "t" + std::to_string(i);
    ASSERT_EQ(a_->Acquire("bench", 40, 5'000, {token})->granted, 1);
    ASSERT_TRUE(a_->Release("bench", {token}).ok());
  }
  const double us = std::chrono::duration<double, std::micro>(Clock::now() - start).count() / n;
  GcraParams params = GcraFor(RateLimitConfig{"1000000/s", 1'000'000, 1'000'000});
  const auto reserve_start = Clock::now();
  for (int i = 0; i < n; ++i) ASSERT_TRUE(a_->Reserve("bench", params, 1'000'000).ok());
  const double reserve_us =
      std::chrono::duration<double, std::micro>(Clock::now() - reserve_start).count() / n;
  std::cout << GetParam() << ": acquire+release " << us << " us, reserve " << reserve_us
            << " us (one process, on this machine"
            << (GetParam() == "redis" ? ", Redis with appendfsync always)\n" : ")\n");
  EXPECT_LT(us, 20'000);
  if (GetParam() != "redis") return;
  // The same without an fsync per write (appendfsync everysec, queue.durability = process).
  testing::RedisServerOptions options;
  options.appendfsync = "everysec";
  testing::RedisServer relaxed(options);
  ASSERT_TRUE(relaxed.Start()) << relaxed.Log();
  QueueConfig queue;
  queue.backend = "redis";
  queue.url = relaxed.Url();
  auto store = MakeLimitStore(queue, milliseconds(500));
  const auto relaxed_start = Clock::now();
  for (int i = 0; i < n; ++i) {
    const std::string token = "t" + std::to_string(i);
    ASSERT_EQ(store->Acquire("bench", 40, 5'000, {token})->granted, 1);
    ASSERT_TRUE(store->Release("bench", {token}).ok());
  }
  std::cout << "redis (appendfsync everysec): acquire+release "
            << std::chrono::duration<double, std::micro>(Clock::now() - relaxed_start).count() / n
            << " us\n";
}

TEST_P(LimitStoreContractTest, AnUnreachableStoreFailsFastWithUnavailable) {
  QueueConfig broken;
  if (GetParam() == "redis") {
    broken.backend = "redis";
    broken.url = "redis://127.0.0.1:" + std::to_string(testing::PickFreePort()) + "/0";
  } else {
    broken.path = dir_.path() + "/no/such/dir/q.db";
  }
  auto store = MakeLimitStore(broken, milliseconds(300));
  const auto start = Clock::now();
  for (int i = 0; i < 20; ++i) {
    auto grant = store->Acquire("llm", 5, 1'000, {"x"});
    ASSERT_FALSE(grant.ok());
    EXPECT_EQ(grant.status().code(), StatusCode::kUnavailable) << grant.status().ToString();
  }
  // One attempt to connect, then the cool-down answers at once.
  EXPECT_LT(std::chrono::duration<double>(Clock::now() - start).count(), 0.5);
}

INSTANTIATE_TEST_SUITE_P(Backends, LimitStoreContractTest, ::testing::Values("sqlite", "redis"),
                         [](const ::testing::TestParamInfo<std::string>& param) {
                           return param.param;
                         });

}  // namespace
}  // namespace firebreak::egress
