// One named upstream API (DESIGN §2 [[integrations]]) and the policies every call to it
// goes through, in this order:
//
//   breaker open? ──yes──▶ rejected at once (503, X-Firebreak-Breaker: open)
//   concurrency cap (bulkhead): a slot, or wait in FIFO up to max_queue, else rejected
//   per attempt: Retry-After gate → token bucket → breaker permit → HTTP with timeout
//   outcome → breaker window, metrics; retry with backoff if the plan says so
//
// Auth is injected here (handlers never see the credential); `traceparent`, the job id
// and an Idempotency-Key travel with the request. Design notes: docs/egress.md.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>

#include "config/config.h"
#include "egress/circuit_breaker.h"
#include "egress/http_client.h"
#include "egress/limits.h"
#include "egress/shared/limit_runner.h"
#include "telemetry/metrics.h"

namespace firebreak::egress {

struct EgressCall {
  std::string method = "GET";  // upper case
  std::string target = "/";    // path (and ?query) under base_url, starting with '/'
  HeaderList headers;          // the caller's own (hop-by-hop and Host already removed)
  std::string body;
  // The caller's trace context (e.g. the job attempt's); the call gets a child span of
  // it (a new trace when empty) and sends that as `traceparent`.
  std::string traceparent;
  std::string job_id;           // sent as X-Firebreak-Job-Id when non-empty
  std::string idempotency_key;  // sent as Idempotency-Key when non-empty (actions)
};

struct EgressResult {
  enum class Kind {
    kResponse,         // the upstream answered (any status): `status`, `headers`, `body`
    kRejectedOpen,     // the breaker is open: nothing was sent
    kRejectedFull,     // no concurrency slot within the bound: nothing was sent
    kRateLimited,      // no token (or Retry-After gate) within the timeout: nothing sent
    kTimeout,          // the last attempt timed out
    kConnectionError,  // the last attempt failed to connect or broke
    kShutdown,         // firebreak is stopping
  };
  Kind kind = Kind::kResponse;
  int status = 0;
  HeaderList headers;
  std::string body;
  std::string error;  // for everything but kResponse
  int attempts = 0;   // attempts sent upstream
  // The last attempt's failure opened (or, as a half-open probe, reopened) the breaker:
  // the upstream is down, not this request wrong. Actions defer instead of spending an
  // attempt, so the one that happens to be the probe is not pushed to the DLQ.
  bool opened_breaker = false;
  // When to try again: the upstream's Retry-After (kResponse), the breaker's remaining
  // open time (kRejectedOpen) or the wait for a token (kRateLimited).
  std::optional<std::chrono::milliseconds> retry_after;
};

const char* EgressResultKindName(EgressResult::Kind kind);

// A read-out for logs and the admin view.
struct IntegrationSnapshot {
  BreakerState breaker = BreakerState::kClosed;
  int64_t breaker_since_ms = 0;  // wall clock (Unix ms) of the last state change, or start
  double failure_rate = 0;
  int64_t calls_in_window = 0;
  int in_flight = 0;
  int max_concurrency = 0;
  int queued = 0;
  int max_queue = 0;
  // The rate limiter's tokens now (negative while calls wait for one); none when the
  // integration has no rate_limit.
  std::optional<double> tokens;
  // "process", "shared", or "shared_degraded" (the store is unreachable: the limits are
  // counted per process until it answers). With "shared", `breaker`, `failure_rate`,
  // `calls_in_window`, `in_flight` and `tokens` are the store's numbers over every
  // process (as of the last answer, at most ~250 ms old); `in_flight_process` and
  // `queued` are this process's.
  std::string limits = "process";
  int in_flight_process = 0;
};

// Single-threaded: construct, Call and Shutdown on the thread that runs `io`; `done`
// runs there exactly once, never inline in Call.
//
// With `limits = "shared"` and a LimitRunner, the concurrency cap, rate limit and breaker
// are counted in the store shared by every process (docs/egress.md "Shared limits"):
// each call takes a lease after its local slot (FIFO within the process, polling with
// backoff across processes), reserves its send time from the shared GCRA, and reports
// its outcome to the shared breaker; the open/closed decision at arrival reads a view
// of the shared breaker refreshed every 250 ms and by every store answer. Store calls
// run on the runner's thread and answer here, so this thread never waits on I/O. When
// the store fails, the integration falls back to its per-process limits (warning log,
// firebreak_integration_shared_limits_degraded = 1) until the store answers again.
class Integration {
 public:
  using Callback = std::function<void(EgressResult)>;

  // `client` and `metrics` (may be null) must outlive the integration. Secrets must be
  // resolved.
  // `shared` (may be null: per-process limits) must outlive the integration and is
  // used only when config.limits is kShared.
  Integration(const IntegrationConfig& config, boost::asio::io_context& io, HttpClient& client,
              IntegrationMetrics* metrics, LimitRunner* shared = nullptr);
  ~Integration();
  Integration(const Integration&) = delete;
  Integration& operator=(const Integration&) = delete;

  void Call(EgressCall call, Callback done);
  // Answers every call still waiting or running with kShutdown; later Calls too.
  void Shutdown();

  IntegrationSnapshot Snapshot();
  const IntegrationConfig& config() const { return config_; }

 private:
  struct Pending;

  int64_t NowUs() const;
  void Reject(const std::shared_ptr<Pending>& call, EgressResult::Kind kind, std::string error,
              std::optional<std::chrono::milliseconds> retry_after);
  // Holds a slot: waits for the Retry-After gate and a token, then sends.
  void StartAttempt(const std::shared_ptr<Pending>& call);
  void Send(const std::shared_ptr<Pending>& call);
  void Transmit(const std::shared_ptr<Pending>& call);
  void OnResponse(const std::shared_ptr<Pending>& call, ClientResponse response);
  // After the breaker heard of the outcome in call->last: retry or finish.
  void Conclude(const std::shared_ptr<Pending>& call, bool failed,
                std::optional<BreakerState> changed);
  // The call holds a local slot: take a shared lease first (shared limits), then start.
  void Admitted(const std::shared_ptr<Pending>& call);

  // ---- shared limits (all on this thread; store calls go through the runner) ----
  bool SharedNow() const { return shared_ != nullptr && !fallback_; }
  // Runs `op` on the runner's thread and `then` with its result back on this thread,
  // unless the integration is gone by then.
  template <typename T>
  void OnStore(std::function<Result<T>(LimitStore&)> op, std::function<void(Result<T>)> then);
  std::string LeaseToken(uint64_t ticket) const;
  void PumpLeases();
  void OnLeases(const std::vector<uint64_t>& tickets, const Result<LeaseGrant>& grant);
  void ReserveShared(const std::shared_ptr<Pending>& call);
  void ReleaseLease(const std::shared_ptr<Pending>& call);
  void ApplySharedBreaker(const SharedBreakerView& view, const std::string& why);
  void EnterFallback(const Status& why);
  void PollShared();
  void RenewLeases();
  void Finish(const std::shared_ptr<Pending>& call, EgressResult result);
  void ReleaseSlot();
  // The call's client span (tracing on only).
  void RecordSpan(const Pending& call, const EgressResult& result) const;
  void NoteBreaker(std::optional<BreakerState> changed, const std::string& why);
  void ScheduleHalfOpen();
  void Wait(const std::shared_ptr<Pending>& call, std::chrono::microseconds delay,
            void (Integration::*then)(const std::shared_ptr<Pending>&));

  const IntegrationConfig config_;
  boost::asio::io_context& io_;
  HttpClient& client_;
  IntegrationMetrics* const metrics_;
  const std::string auth_header_name_;   // "" without auth, or with auth in the path
  const std::string auth_header_value_;  // never logged
  // Every call's URL starts here: base_url, plus prefix and secret for `auth = { path }`
  // (never logged); url_shown_ is the same with the secret redacted, for traces.
  const std::string url_base_;
  const std::string url_shown_;

  CircuitBreaker breaker_;
  Bulkhead bulkhead_;
  std::optional<TokenBucket> bucket_;
  int64_t gate_until_us_ = 0;  // no attempt before this (an upstream's Retry-After)
  int64_t breaker_since_ms_;   // wall clock of the breaker's last change (or start)
  boost::asio::steady_timer half_open_timer_;
  std::mt19937_64 rng_{std::random_device{}()};
  uint64_t next_ticket_ = 1;
  std::map<uint64_t, std::shared_ptr<Pending>> queued_;  // waiting for a slot, by ticket
  std::map<Pending*, std::shared_ptr<Pending>> active_;  // holding a slot
  bool shut_down_ = false;

  // Shared limits: null for per-process limits.
  LimitRunner* const shared_;
  std::optional<GcraParams> gcra_;
  std::shared_ptr<Integration*> self_;  // answers from the runner hold it weakly
  bool fallback_ = false;               // counting per process: the store failed
  int64_t fallback_until_us_ = 0;       // stays so at least until then
  SharedBreakerView shared_breaker_;    // the store's last word
  int64_t shared_open_until_us_ = 0;    // from its open_left_ms, on this clock
  int shared_in_flight_ = 0;            // leases held over every process, last seen
  std::optional<double> shared_tokens_;
  std::deque<std::shared_ptr<Pending>> lease_waiters_;  // holding a local slot, FIFO
  bool acquiring_ = false;    // an Acquire is at the store
  bool pump_again_ = false;   // a lease was freed meanwhile: ask again at once
  int lease_backoff_ms_ = 0;  // between fruitless asks while the cap is full
  bool polling_ = false;
  boost::asio::steady_timer lease_retry_timer_;
  boost::asio::steady_timer poll_timer_;
  boost::asio::steady_timer renew_timer_;
};

}  // namespace firebreak::egress
