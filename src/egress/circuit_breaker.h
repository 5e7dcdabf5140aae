// A circuit breaker for one integration (DESIGN §2 `breaker`): closed → open when the
// failure rate over a sliding time window reaches `failure_rate` after at least
// `min_calls` calls → half-open after `open_for`, where one probe call at a time is let
// through → closed on the first successful probe, open again on a failed one.
//
// Pure: no clock, no I/O, no threads. Every method takes the current monotonic time, so
// the decisions are a function of the calls recorded and the time, and tests drive it
// without sleeping. Not thread-safe (the owning Integration runs on one thread).
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "config/config.h"

namespace firebreak::egress {

enum class BreakerState {
  kClosed = 0,    // calls flow; outcomes are counted in the window
  kHalfOpen = 1,  // open_for has passed: one probe call at a time decides
  kOpen = 2,      // calls are rejected without touching the upstream
};

const char* BreakerStateName(BreakerState state);

class CircuitBreaker {
 public:
  // The window is kept as kBuckets buckets of window/kBuckets each, so old outcomes
  // leave it in steps of a tenth of the window.
  static constexpr int kBuckets = 10;

  explicit CircuitBreaker(const CircuitBreakerConfig& config);

  struct Permit {
    bool allowed = false;
    bool probe = false;          // allowed as the half-open probe: report its outcome
    int64_t retry_after_us = 0;  // when refused: time until the breaker half-opens (≥ 0)
  };
  // May a call go out now? Moves open → half-open once open_for has passed.
  Permit TryAcquire(int64_t now_us);

  // Outcome of a call that was allowed. Returns the new state when it changed.
  std::optional<BreakerState> OnSuccess(int64_t now_us, bool probe);
  std::optional<BreakerState> OnFailure(int64_t now_us, bool probe);
  // An allowed call ended without a verdict on the upstream (cancelled, or refused by a
  // later limit before it was sent): frees the probe slot, counts nothing.
  void OnAbandoned(bool probe);

  // The state at `now_us` (open → half-open is applied here too); returns the state
  // and, through `changed`, whether this call moved it.
  BreakerState Advance(int64_t now_us, bool* changed = nullptr);
  BreakerState state() const { return state_; }
  // Failures / calls in the window at `now_us` (0 without calls), and the call count.
  double FailureRate(int64_t now_us);
  int64_t CallsInWindow(int64_t now_us);
  // When the breaker half-opens (meaningful while open).
  int64_t OpenUntilUs() const { return open_until_us_; }

 private:
  struct Bucket {
    int64_t start_us = 0;  // bucket covers [start_us, start_us + bucket_us_)
    int64_t calls = 0;
    int64_t failures = 0;
  };

  void Roll(int64_t now_us);
  void Record(int64_t now_us, bool failed);
  void ResetWindow();
  void Open(int64_t now_us);

  const double failure_rate_;
  const int64_t min_calls_;
  const int64_t bucket_us_;
  const int64_t open_for_us_;

  BreakerState state_ = BreakerState::kClosed;
  int64_t open_until_us_ = 0;
  bool probe_in_flight_ = false;
  std::vector<Bucket> buckets_;  // ring, indexed by (time / bucket_us_) % kBuckets
};

}  // namespace firebreak::egress
