// Egress limits shared by every process on one queue store (`limits = "shared"`, the
// default; docs/egress.md "Shared limits"): concurrency permits as leases that expire
// when their holder dies, the rate limit as one GCRA, and the circuit breaker's state and
// window. Two backends, one contract (tests/unit/limit_store_contract_test.cc):
// redis/ (Lua scripts, the server's clock) and sqlite/ (a sibling file of the queue's,
// `<queue path>.limits`, one BEGIN IMMEDIATE transaction per operation).
//
// The pure parts (lease arithmetic, GCRA, the breaker window as a value, reply fields)
// live here as free functions with time passed in, so both backends and the unit tests
// use the same arithmetic.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "config/config.h"
#include "egress/circuit_breaker.h"

namespace firebreak::egress {

// ---- pure parts -------------------------------------------------------------------

// A lease taken at `now_ms` ends at LeaseExpiry; holders renew every LeaseRenewInterval,
// so a live holder keeps its permit through two missed renewals.
inline int64_t LeaseExpiry(int64_t now_ms, int64_t lease_ms) { return now_ms + lease_ms; }
inline bool LeaseExpired(int64_t expiry_ms, int64_t now_ms) { return expiry_ms <= now_ms; }
int64_t LeaseRenewInterval(int64_t lease_ms);  // lease/3, at least 50 ms
// How many of `wanted` new leases fit next to `live` unexpired ones under `max`.
int LeasesGrantable(int live, int max, int wanted);

// The rate limit as GCRA (the token bucket with reservations, as one timestamp):
// emission interval T = 1/rate, tolerance tau = (burst - 1) * T.
struct GcraParams {
  int64_t interval_us = 0;
  int64_t tolerance_us = 0;
};
GcraParams GcraFor(const RateLimitConfig& rate_limit);

struct GcraDecision {
  bool allowed = false;
  int64_t wait_us = 0;     // allowed: send after this; refused: the wait that was too long
  int64_t new_tat_us = 0;  // the theoretical arrival time to store (unchanged when refused)
};
// `tat_us` is the stored theoretical arrival time (0 when none).
GcraDecision GcraReserve(int64_t tat_us, int64_t now_us, const GcraParams& params,
                         int64_t max_wait_us);
// Tokens the bucket would show at `now_us` (negative while reservations wait).
double GcraTokens(int64_t tat_us, int64_t now_us, const GcraParams& params);

// The shared breaker as a value: what the store keeps per integration.
struct SharedBreakerRow {
  struct Bucket {
    int64_t start_ms = 0;
    int64_t calls = 0;
    int64_t failures = 0;
  };
  BreakerState state = BreakerState::kClosed;  // as stored: kOpen past open_until is half-open
  int64_t open_until_ms = 0;
  int64_t probe_until_ms = 0;  // a half-open probe is out until then (0: none)
  std::array<Bucket, CircuitBreaker::kBuckets> buckets{};
};

enum class CallVerdict { kSuccess = 0, kFailure = 1, kAbandoned = 2 };

// What a store operation tells about the breaker. Times are relative to the store's
// clock, so processes with skewed clocks agree.
struct SharedBreakerView {
  BreakerState state = BreakerState::kClosed;  // effective: open past open_until → half-open
  int64_t open_left_ms = 0;                    // while open: until half-open
  int64_t calls = 0;                           // in the window
  int64_t failures = 0;
  bool changed = false;  // this operation moved the state
  bool probe = false;    // ClaimProbe: the caller is the half-open probe
  bool allowed = false;  // ClaimProbe: the caller may send (closed, or it is the probe)
};

// The effective state at `now_ms` (open → half-open past open_until), applied to `row`.
BreakerState SharedBreakerAdvance(SharedBreakerRow& row, int64_t now_ms);
// Records an allowed call's verdict (the CircuitBreaker rules, on the shared row).
SharedBreakerView SharedBreakerRecord(SharedBreakerRow& row, const CircuitBreakerConfig& config,
                                      int64_t now_ms, CallVerdict verdict, bool probe);
// May a call go out? Closed: yes. Half-open: the first caller (no probe out, or its
// probe lease of `probe_lease_ms` ran out) becomes the probe. Open: no.
SharedBreakerView SharedBreakerClaimProbe(SharedBreakerRow& row, int64_t now_ms,
                                          int64_t probe_lease_ms);
SharedBreakerView SharedBreakerRead(SharedBreakerRow& row, const CircuitBreakerConfig& config,
                                    int64_t now_ms);

// Store replies travel as flat integer lists (Redis scripts return them; SQLite builds
// them the same way): {state, open_left_ms, calls, failures, changed, probe, allowed}.
inline constexpr size_t kBreakerFields = 7;
std::vector<int64_t> BreakerFields(const SharedBreakerView& view);
Result<SharedBreakerView> ParseBreakerFields(const std::vector<int64_t>& fields, size_t offset);

// ---- the store --------------------------------------------------------------------

// After an error a store fails every operation at once for this long (its caller is on
// the per-process fallback meanwhile); then the next operation reconnects.
inline constexpr std::chrono::milliseconds kLimitStoreCoolDown{1'000};

struct LeaseGrant {
  int granted = 0;    // the first `granted` tokens asked for hold a lease now
  int in_flight = 0;  // unexpired leases after the call, over every process
};

struct TokenReservation {
  bool allowed = false;
  int64_t wait_us = 0;  // allowed: send after this; refused: what the wait would have been
};

struct SharedLimitsView {
  int in_flight = 0;
  SharedBreakerView breaker;
  std::optional<double> tokens;  // with a rate limit
};

// One connection to the shared state. Every call blocks on I/O (a round trip to Redis,
// a transaction on the SQLite file), so callers run it off their I/O thread (the Egress
// runs it on its limits thread). Not thread-safe: one thread at a time.
// Errors are kUnavailable or kDeadlineExceeded (the store is down, hung or busy beyond
// the timeout); after one, calls fail fast for a short cool-down instead of each paying
// a connect timeout, then the next call reconnects.
class LimitStore {
 public:
  virtual ~LimitStore() = default;

  // Drops expired leases, then gives leases of `lease_ms` to as many of `tokens`, in
  // order, as fit under `max` across every process.
  virtual Result<LeaseGrant> Acquire(const std::string& integration, int max, int64_t lease_ms,
                                     const std::vector<std::string>& tokens) = 0;
  // Returns the leases left in flight. Unknown tokens are ignored.
  virtual Result<int> Release(const std::string& integration,
                              const std::vector<std::string>& tokens) = 0;
  // Extends the leases that still exist; returns how many did (expired ones are gone
  // for good: their slot may already be someone else's).
  virtual Result<int> Renew(const std::string& integration, int64_t lease_ms,
                            const std::vector<std::string>& tokens) = 0;
  // Reserves the next send time of the shared rate limit, unless it is further away
  // than `max_wait_us`.
  virtual Result<TokenReservation> Reserve(const std::string& integration,
                                           const GcraParams& params, int64_t max_wait_us) = 0;
  virtual Result<SharedBreakerView> Record(const std::string& integration,
                                           const CircuitBreakerConfig& config,
                                           CallVerdict verdict, bool probe) = 0;
  virtual Result<SharedBreakerView> ClaimProbe(const std::string& integration,
                                               int64_t probe_lease_ms) = 0;
  // The admin/poll view; `gcra` null without a rate limit.
  virtual Result<SharedLimitsView> Read(const std::string& integration,
                                        const CircuitBreakerConfig& config,
                                        const GcraParams* gcra) = 0;

  virtual const char* backend() const = 0;  // "redis" | "sqlite"
};

// The store of the queue's backend: `<queue.path>.limits` for sqlite, `queue.url` for
// redis. Opening does not connect: the first operation does (so a store that is down at
// start only degrades limits to per process, it does not stop the worker).
// `timeout` bounds every operation (Redis command timeout, SQLite busy timeout).
std::unique_ptr<LimitStore> MakeLimitStore(const QueueConfig& queue,
                                           std::chrono::milliseconds timeout);

}  // namespace firebreak::egress
