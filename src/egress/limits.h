// The two admission limits of an integration, as plain single-threaded objects with
// time passed in (STYLE: policies are pure and tested apart from I/O):
// - TokenBucket: `rate_limit = { rate, burst }`. Callers reserve a token and are told
//   how long to wait for it, so waiting calls go out evenly spaced in arrival order.
// - Bulkhead: `max_concurrency` calls in flight; further calls wait in FIFO order up to
//   `max_queue` of them, then are refused at once (fail fast instead of piling up).
#pragma once

#include <cstdint>
#include <deque>
#include <optional>

namespace firebreak::egress {

class TokenBucket {
 public:
  // Starts full: `burst` calls may go out at once, then `per_second` on average.
  TokenBucket(double per_second, int burst, int64_t now_us);

  // Takes one token. Returns how long the caller must wait before sending (0: now), or
  // nullopt without taking anything when that wait would exceed `max_wait_us`.
  std::optional<int64_t> Reserve(int64_t now_us, int64_t max_wait_us);
  // Tokens available at `now_us` (negative while reservations wait), for the admin view.
  double Available(int64_t now_us);

 private:
  void Refill(int64_t now_us);

  const double per_us_;
  const double burst_;
  double tokens_;
  int64_t last_us_;
};

class Bulkhead {
 public:
  Bulkhead(int max_concurrent, int max_queued);

  enum class Admission { kNow, kQueued, kRejected };
  // kNow: the caller holds a slot. kQueued: `ticket` will be handed a slot by a later
  // Release (or leave with Cancel). kRejected: in flight and queue are both full.
  Admission Acquire(uint64_t ticket);
  // Frees a slot. When a caller waits, its ticket is returned: the slot is now its own.
  std::optional<uint64_t> Release();
  // A queued ticket gives up (its deadline passed); false if it is not queued.
  bool Cancel(uint64_t ticket);

  int in_flight() const { return in_flight_; }
  int queued() const { return static_cast<int>(waiting_.size()); }
  int max_concurrent() const { return max_concurrent_; }

 private:
  const int max_concurrent_;
  const int max_queued_;
  int in_flight_ = 0;
  std::deque<uint64_t> waiting_;
};

}  // namespace firebreak::egress
