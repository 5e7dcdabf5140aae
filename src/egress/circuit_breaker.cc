#include "egress/circuit_breaker.h"

#include <algorithm>

namespace firebreak::egress {

const char* BreakerStateName(BreakerState state) {
  switch (state) {
    case BreakerState::kClosed:
      return "closed";
    case BreakerState::kHalfOpen:
      return "half_open";
    case BreakerState::kOpen:
      return "open";
  }
  return "closed";
}

CircuitBreaker::CircuitBreaker(const CircuitBreakerConfig& config)
    : failure_rate_(config.failure_rate),
      min_calls_(std::max(1, config.min_calls)),
      bucket_us_(std::max<int64_t>(1, config.window.count() * 1000 / kBuckets)),
      open_for_us_(std::max<int64_t>(0, config.open_for.count() * 1000)),
      buckets_(kBuckets) {}

void CircuitBreaker::ResetWindow() {
  for (Bucket& bucket : buckets_) bucket = Bucket{};
}

void CircuitBreaker::Roll(int64_t now_us) {
  const int64_t start = now_us / bucket_us_ * bucket_us_;
  Bucket& bucket = buckets_[static_cast<size_t>((now_us / bucket_us_) % kBuckets)];
  if (bucket.start_us != start) bucket = Bucket{start, 0, 0};
}

void CircuitBreaker::Record(int64_t now_us, bool failed) {
  Roll(now_us);
  Bucket& bucket = buckets_[static_cast<size_t>((now_us / bucket_us_) % kBuckets)];
  ++bucket.calls;
  if (failed) ++bucket.failures;
}

int64_t CircuitBreaker::CallsInWindow(int64_t now_us) {
  const int64_t oldest = now_us / bucket_us_ * bucket_us_ - (kBuckets - 1) * bucket_us_;
  int64_t calls = 0;
  for (const Bucket& bucket : buckets_) {
    if (bucket.start_us >= oldest && bucket.start_us <= now_us) calls += bucket.calls;
  }
  return calls;
}

double CircuitBreaker::FailureRate(int64_t now_us) {
  const int64_t oldest = now_us / bucket_us_ * bucket_us_ - (kBuckets - 1) * bucket_us_;
  int64_t calls = 0;
  int64_t failures = 0;
  for (const Bucket& bucket : buckets_) {
    if (bucket.start_us >= oldest && bucket.start_us <= now_us) {
      calls += bucket.calls;
      failures += bucket.failures;
    }
  }
  return calls == 0 ? 0.0 : static_cast<double>(failures) / static_cast<double>(calls);
}

void CircuitBreaker::Open(int64_t now_us) {
  state_ = BreakerState::kOpen;
  open_until_us_ = now_us + open_for_us_;
  probe_in_flight_ = false;
}

BreakerState CircuitBreaker::Advance(int64_t now_us, bool* changed) {
  if (changed != nullptr) *changed = false;
  if (state_ == BreakerState::kOpen && now_us >= open_until_us_) {
    state_ = BreakerState::kHalfOpen;
    probe_in_flight_ = false;
    if (changed != nullptr) *changed = true;
  }
  return state_;
}

CircuitBreaker::Permit CircuitBreaker::TryAcquire(int64_t now_us) {
  switch (Advance(now_us)) {
    case BreakerState::kClosed:
      return {true, false, 0};
    case BreakerState::kHalfOpen:
      if (probe_in_flight_) return {false, false, 0};
      probe_in_flight_ = true;
      return {true, true, 0};
    case BreakerState::kOpen:
      return {false, false, std::max<int64_t>(0, open_until_us_ - now_us)};
  }
  return {false, false, 0};
}

std::optional<BreakerState> CircuitBreaker::OnSuccess(int64_t now_us, bool probe) {
  if (probe) {
    probe_in_flight_ = false;
    if (state_ == BreakerState::kHalfOpen) {
      // The upstream answers again: start over with an empty window, so the failures
      // that opened the breaker do not reopen it at the next call.
      state_ = BreakerState::kClosed;
      ResetWindow();
      return state_;
    }
    return std::nullopt;
  }
  if (state_ == BreakerState::kClosed) Record(now_us, false);
  return std::nullopt;
}

std::optional<BreakerState> CircuitBreaker::OnFailure(int64_t now_us, bool probe) {
  if (probe) {
    probe_in_flight_ = false;
    if (state_ == BreakerState::kHalfOpen) {
      Open(now_us);
      return state_;
    }
    return std::nullopt;
  }
  if (state_ != BreakerState::kClosed) return std::nullopt;  // a call from before it opened
  Record(now_us, true);
  if (CallsInWindow(now_us) >= min_calls_ && FailureRate(now_us) >= failure_rate_) {
    Open(now_us);
    return state_;
  }
  return std::nullopt;
}

void CircuitBreaker::OnAbandoned(bool probe) {
  if (probe) probe_in_flight_ = false;
}

}  // namespace firebreak::egress
