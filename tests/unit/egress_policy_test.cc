// The egress policies as pure objects, driven by a hand-moved clock (microseconds).
#include <gtest/gtest.h>

#include <random>

#include "egress/circuit_breaker.h"
#include "egress/limits.h"
#include "egress/retry_policy.h"

namespace firebreak::egress {
namespace {

using std::chrono::milliseconds;

constexpr int64_t kMs = 1000;
constexpr int64_t kSecond = 1000 * kMs;

CircuitBreakerConfig Breaker(double rate, int min_calls, int64_t window_s, int64_t open_s) {
  CircuitBreakerConfig config;
  config.failure_rate = rate;
  config.min_calls = min_calls;
  config.window = milliseconds(window_s * 1000);
  config.open_for = milliseconds(open_s * 1000);
  return config;
}

TEST(CircuitBreakerTest, StaysClosedBelowMinCallsEvenAtFullFailure) {
  CircuitBreaker breaker(Breaker(0.5, 20, 30, 30));
  for (int i = 0; i < 19; ++i) {
    ASSERT_TRUE(breaker.TryAcquire(i * kMs).allowed);
    EXPECT_FALSE(breaker.OnFailure(i * kMs, false).has_value());
  }
  EXPECT_EQ(breaker.state(), BreakerState::kClosed);
  EXPECT_DOUBLE_EQ(breaker.FailureRate(19 * kMs), 1.0);
  auto changed = breaker.OnFailure(19 * kMs, false);
  ASSERT_TRUE(changed.has_value());
  EXPECT_EQ(*changed, BreakerState::kOpen);
}

TEST(CircuitBreakerTest, OpensAtTheFailureRateNotBelowIt) {
  CircuitBreaker breaker(Breaker(0.5, 10, 30, 30));
  int64_t t = 0;
  // 6 successes, then failures: the rate reaches 0.5 at the 6th failure (6/12).
  for (int i = 0; i < 6; ++i) breaker.OnSuccess(t += kMs, false);
  for (int i = 0; i < 5; ++i) {
    EXPECT_FALSE(breaker.OnFailure(t += kMs, false).has_value()) << i;
  }
  EXPECT_LT(breaker.FailureRate(t), 0.5);
  EXPECT_EQ(breaker.OnFailure(t += kMs, false), BreakerState::kOpen);
}

TEST(CircuitBreakerTest, RejectsWhileOpenThenLetsOneProbeThroughAfterOpenFor) {
  CircuitBreaker breaker(Breaker(0.5, 2, 30, 30));
  breaker.OnFailure(0, false);
  ASSERT_EQ(breaker.OnFailure(1 * kMs, false), BreakerState::kOpen);
  auto refused = breaker.TryAcquire(10 * kSecond);
  EXPECT_FALSE(refused.allowed);
  EXPECT_EQ(refused.retry_after_us, 30 * kSecond + 1 * kMs - 10 * kSecond);

  const int64_t after = 30 * kSecond + 1 * kMs;
  bool changed = false;
  EXPECT_EQ(breaker.Advance(after, &changed), BreakerState::kHalfOpen);
  EXPECT_TRUE(changed);
  auto probe = breaker.TryAcquire(after);
  EXPECT_TRUE(probe.allowed);
  EXPECT_TRUE(probe.probe);
  // Only one probe at a time.
  EXPECT_FALSE(breaker.TryAcquire(after).allowed);
  EXPECT_EQ(breaker.OnSuccess(after + kMs, true), BreakerState::kClosed);
  // Closing starts a fresh window: the old failures do not reopen it.
  EXPECT_EQ(breaker.CallsInWindow(after + kMs), 0);
  EXPECT_FALSE(breaker.OnFailure(after + 2 * kMs, false).has_value());
  EXPECT_EQ(breaker.state(), BreakerState::kClosed);
}

TEST(CircuitBreakerTest, AFailedProbeReopensForAnotherOpenFor) {
  CircuitBreaker breaker(Breaker(0.5, 1, 30, 10));
  ASSERT_EQ(breaker.OnFailure(0, false), BreakerState::kOpen);
  ASSERT_TRUE(breaker.TryAcquire(10 * kSecond).probe);
  EXPECT_EQ(breaker.OnFailure(10 * kSecond + 5 * kMs, true), BreakerState::kOpen);
  EXPECT_FALSE(breaker.TryAcquire(15 * kSecond).allowed);
  EXPECT_EQ(breaker.OpenUntilUs(), 20 * kSecond + 5 * kMs);
}

TEST(CircuitBreakerTest, AnAbandonedProbeFreesTheProbeSlot) {
  CircuitBreaker breaker(Breaker(0.5, 1, 30, 1));
  breaker.OnFailure(0, false);
  ASSERT_TRUE(breaker.TryAcquire(kSecond).probe);
  breaker.OnAbandoned(true);
  EXPECT_TRUE(breaker.TryAcquire(kSecond).probe);
}

TEST(CircuitBreakerTest, OldOutcomesLeaveTheSlidingWindow) {
  CircuitBreaker breaker(Breaker(0.5, 5, 10, 30));
  for (int i = 0; i < 4; ++i) breaker.OnFailure(i * kMs, false);
  EXPECT_EQ(breaker.CallsInWindow(5 * kMs), 4);
  // 11 s later the window (10 s) holds none of them, so 1 more failure is not enough.
  EXPECT_EQ(breaker.CallsInWindow(11 * kSecond), 0);
  EXPECT_FALSE(breaker.OnFailure(11 * kSecond, false).has_value());
  EXPECT_EQ(breaker.state(), BreakerState::kClosed);
}

TEST(TokenBucketTest, BurstThenEvenlySpacedReservations) {
  TokenBucket bucket(50, 5, 0);  // 50/s = one token every 20 ms
  for (int i = 0; i < 5; ++i) EXPECT_EQ(bucket.Reserve(0, kSecond), 0) << i;
  // The next callers wait 20, 40, 60 ms: spaced at the rate, in arrival order.
  EXPECT_EQ(bucket.Reserve(0, kSecond), 20 * kMs);
  EXPECT_EQ(bucket.Reserve(0, kSecond), 40 * kMs);
  EXPECT_EQ(bucket.Reserve(0, kSecond), 60 * kMs);
  // A wait beyond max_wait takes nothing.
  EXPECT_FALSE(bucket.Reserve(0, 70 * kMs).has_value());
  EXPECT_EQ(bucket.Reserve(0, kSecond), 80 * kMs);
}

TEST(TokenBucketTest, RateHoldsOverTime) {
  TokenBucket bucket(50, 1, 0);
  int sent = 0;
  // Callers who never wait: in 10 s at most 1 + 10*50 go through.
  for (int64_t t = 0; t <= 10 * kSecond; t += kMs) {
    if (bucket.Reserve(t, 0) == 0) ++sent;
  }
  EXPECT_GE(sent, 500);
  EXPECT_LE(sent, 501);
}

TEST(TokenBucketTest, RefillIsCappedAtBurst) {
  TokenBucket bucket(10, 3, 0);
  for (int i = 0; i < 3; ++i) bucket.Reserve(0, 0);
  EXPECT_NEAR(bucket.Available(3600 * kSecond), 3.0, 1e-9);
}

TEST(BulkheadTest, AdmitsUpToTheCapQueuesFifoThenRejects) {
  Bulkhead bulkhead(2, 2);
  EXPECT_EQ(bulkhead.Acquire(1), Bulkhead::Admission::kNow);
  EXPECT_EQ(bulkhead.Acquire(2), Bulkhead::Admission::kNow);
  EXPECT_EQ(bulkhead.Acquire(3), Bulkhead::Admission::kQueued);
  EXPECT_EQ(bulkhead.Acquire(4), Bulkhead::Admission::kQueued);
  EXPECT_EQ(bulkhead.Acquire(5), Bulkhead::Admission::kRejected);
  EXPECT_EQ(bulkhead.in_flight(), 2);
  EXPECT_EQ(bulkhead.Release(), std::optional<uint64_t>(3));  // the slot passes on
  EXPECT_EQ(bulkhead.in_flight(), 2);
  EXPECT_TRUE(bulkhead.Cancel(4));
  EXPECT_FALSE(bulkhead.Cancel(4));
  EXPECT_EQ(bulkhead.Release(), std::nullopt);
  EXPECT_EQ(bulkhead.in_flight(), 1);
  // A newcomer does not jump a waiting queue.
  Bulkhead fair(1, 5);
  fair.Acquire(1);
  fair.Acquire(2);
  EXPECT_EQ(fair.Release(), std::optional<uint64_t>(2));
}

TEST(RetryPolicyTest, ReplaySafety) {
  for (const char* method : {"GET", "HEAD", "OPTIONS", "PUT", "DELETE"}) {
    EXPECT_TRUE(ReplaySafe(method, false)) << method;
  }
  EXPECT_FALSE(ReplaySafe("POST", false));
  EXPECT_FALSE(ReplaySafe("PATCH", false));
  EXPECT_TRUE(ReplaySafe("POST", true));
}

TEST(RetryPolicyTest, RetriesRetryableOutcomesOnTheConfiguredSchedule) {
  IntegrationRetryConfig policy;  // 3 attempts, 250ms / 1s / 4s
  policy.jitter = false;
  std::mt19937_64 rng(1);
  AttemptOutcome timeout{AttemptOutcome::Kind::kTimeout, 0, {}};
  RetryPlan first = PlanRetry(policy, 1, timeout, true, rng);
  EXPECT_TRUE(first.retry);
  EXPECT_EQ(first.delay, milliseconds(250));
  RetryPlan second = PlanRetry(policy, 2, {AttemptOutcome::Kind::kResponse, 503, {}}, true, rng);
  EXPECT_TRUE(second.retry);
  EXPECT_EQ(second.delay, milliseconds(1000));
  EXPECT_FALSE(PlanRetry(policy, 3, timeout, true, rng).retry);
  EXPECT_STREQ(PlanRetry(policy, 3, timeout, true, rng).reason, "exhausted");
  policy.attempts = 5;
  EXPECT_EQ(PlanRetry(policy, 4, timeout, true, rng).delay, milliseconds(4000));  // last entry
}

TEST(RetryPolicyTest, NeverResendsANonIdempotentRequestThatMayHaveArrived) {
  IntegrationRetryConfig policy;
  std::mt19937_64 rng(1);
  for (AttemptOutcome outcome : {AttemptOutcome{AttemptOutcome::Kind::kTimeout, 0, {}},
                                 AttemptOutcome{AttemptOutcome::Kind::kConnectionError, 0, {}},
                                 AttemptOutcome{AttemptOutcome::Kind::kResponse, 500, {}},
                                 AttemptOutcome{AttemptOutcome::Kind::kResponse, 429, {}}}) {
    RetryPlan plan = PlanRetry(policy, 1, outcome, /*replay_safe=*/false, rng);
    EXPECT_FALSE(plan.retry);
    EXPECT_STREQ(plan.reason, "not_replay_safe");
  }
  // A refused connection means nothing was sent: safe for any method.
  EXPECT_TRUE(
      PlanRetry(policy, 1, {AttemptOutcome::Kind::kConnectFailed, 0, {}}, false, rng).retry);
}

TEST(RetryPolicyTest, DoesNotRetryAnswersThatWillNotChange) {
  IntegrationRetryConfig policy;
  std::mt19937_64 rng(1);
  for (int status : {200, 201, 301, 400, 401, 403, 404, 422, 501, 505}) {
    EXPECT_FALSE(PlanRetry(policy, 1, {AttemptOutcome::Kind::kResponse, status, {}}, true, rng).retry)
        << status;
  }
  for (int status : {408, 429, 500, 502, 503, 504}) {
    EXPECT_TRUE(PlanRetry(policy, 1, {AttemptOutcome::Kind::kResponse, status, {}}, true, rng).retry)
        << status;
  }
}

TEST(RetryPolicyTest, RetryAfterIsAMinimumAndTooLongOnesGoBackToTheCaller) {
  IntegrationRetryConfig policy;  // backoff up to 4 s
  policy.jitter = false;
  std::mt19937_64 rng(1);
  AttemptOutcome limited{AttemptOutcome::Kind::kResponse, 429, milliseconds(1000)};
  RetryPlan plan = PlanRetry(policy, 1, limited, true, rng);
  EXPECT_TRUE(plan.retry);
  EXPECT_EQ(plan.delay, milliseconds(1000));  // over the 250 ms backoff
  EXPECT_STREQ(plan.reason, "retry_after");
  limited.retry_after = milliseconds(60'000);
  plan = PlanRetry(policy, 1, limited, true, rng);
  EXPECT_FALSE(plan.retry);
  EXPECT_STREQ(plan.reason, "retry_after_too_long");
}

TEST(RetryPolicyTest, JitterSpreadsAroundTheScheduleAndKeepsItsMean) {
  IntegrationRetryConfig policy;
  std::mt19937_64 rng(7);
  AttemptOutcome failed{AttemptOutcome::Kind::kResponse, 503, {}};
  int64_t total = 0;
  int64_t low = 1'000'000, high = 0;
  for (int i = 0; i < 2000; ++i) {
    int64_t d = PlanRetry(policy, 2, failed, true, rng).delay.count();
    total += d;
    low = std::min(low, d);
    high = std::max(high, d);
  }
  EXPECT_GE(low, 500);
  EXPECT_LE(high, 1500);
  EXPECT_LT(high - low, 1001);
  EXPECT_NEAR(static_cast<double>(total) / 2000, 1000, 40);
}

}  // namespace
}  // namespace firebreak::egress
