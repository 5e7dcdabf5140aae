#include "egress/integration.h"

#include <algorithm>
#include <boost/asio/post.hpp>
#include <vector>

#include "common/clock.h"
#include "common/crypto.h"
#include "common/http_util.h"
#include "common/units.h"
#include "telemetry/log.h"
#include "telemetry/tracing.h"

namespace firebreak::egress {
namespace {

using std::chrono::microseconds;
using std::chrono::milliseconds;

// Headers a caller may not pass through: hop-by-hop ones (RFC 9110 §7.6.1), framing
// (curl frames the body itself), and the ones firebreak sets.
bool Dropped(const std::string& lower_name, bool has_auth) {
  static const char* const kDropped[] = {
      "connection",       "keep-alive", "proxy-connection",  "proxy-authorization",
      "te",               "trailer",    "transfer-encoding", "upgrade",
      "host",             "content-length", "expect",        "traceparent",
      "x-firebreak-job-id"};
  for (const char* name : kDropped) {
    if (lower_name == name) return true;
  }
  return has_auth && lower_name == "authorization";
}

std::string HeaderValue(const HeaderList& headers, std::string_view lower_name) {
  for (const auto& [name, value] : headers) {
    if (name == lower_name) return value;
  }
  return "";
}

// How often the shared breaker/in-flight view is refreshed: an open breaker reaches
// every process within this (plus a round trip).
constexpr milliseconds kSharedPoll{250};
// After a store failure, limits stay per process at least this long.
constexpr microseconds kFallbackHold{2'000'000};
// Between fruitless asks for a lease while the shared cap is full (doubling from 2 ms).
constexpr int kMaxLeaseBackoffMs = 25;
// Leases asked for in one store round trip.
constexpr size_t kLeaseBatch = 64;

EgressResult ShutdownResult(int attempts) {
  EgressResult result;
  result.kind = EgressResult::Kind::kShutdown;
  result.error = "firebreak is stopping";
  result.attempts = attempts;
  return result;
}

}  // namespace

const char* EgressResultKindName(EgressResult::Kind kind) {
  switch (kind) {
    case EgressResult::Kind::kResponse:
      return "response";
    case EgressResult::Kind::kRejectedOpen:
      return "rejected_open";
    case EgressResult::Kind::kRejectedFull:
      return "rejected_full";
    case EgressResult::Kind::kRateLimited:
      return "rate_limited";
    case EgressResult::Kind::kTimeout:
      return "timeout";
    case EgressResult::Kind::kConnectionError:
      return "connection_error";
    case EgressResult::Kind::kShutdown:
      return "shutdown";
  }
  return "response";
}

struct Integration::Pending {
  explicit Pending(boost::asio::io_context& io) : timer(io) {}

  EgressCall call;
  Callback done;
  std::string url;
  HeaderList headers;  // as sent upstream
  bool replay_safe = false;
  uint64_t ticket = 0;
  int attempts = 0;  // sent upstream so far
  bool probe = false;
  int64_t deadline_us = 0;     // arrival + timeout: the longest it waits for a slot
  bool waiting_lease = false;  // in lease_waiters_
  std::string lease;           // the shared permit held ("" none)
  bool shared_probe = false;   // the shared breaker's half-open probe
  uint64_t transfer = 0;  // the running HTTP transfer, 0 when none
  bool finished = false;
  ClientResponse last;  // the last attempt's answer, for the final result
  std::string parent_traceparent;  // the caller's context; call.traceparent is this call's
  int64_t started_unix_ns = 0;     // 0 when tracing is off
  boost::asio::steady_timer timer;  // queue deadline, waits for a token, backoff
};

Integration::Integration(const IntegrationConfig& config, boost::asio::io_context& io,
                         HttpClient& client, IntegrationMetrics* metrics, LimitRunner* shared)
    : config_(config),
      io_(io),
      client_(client),
      metrics_(metrics),
      auth_header_name_(!config.auth                                          ? ""
                        : config.auth->kind == IntegrationAuth::Kind::kBearer ? "Authorization"
                        : config.auth->kind == IntegrationAuth::Kind::kHeader ? config.auth->header_name
                                                                              : ""),
      auth_header_value_(!config.auth ? ""
                         : config.auth->kind == IntegrationAuth::Kind::kBearer
                             ? "Bearer " + config.auth->secret.value
                             : config.auth->secret.value),
      url_base_(config.auth && config.auth->kind == IntegrationAuth::Kind::kPath
                    ? config.base_url + config.auth->path_prefix + config.auth->secret.value
                    : config.base_url),
      url_shown_(config.auth && config.auth->kind == IntegrationAuth::Kind::kPath
                     ? config.base_url + config.auth->path_prefix + "REDACTED"
                     : config.base_url),
      breaker_(config.breaker),
      bulkhead_(config.max_concurrency, config.max_queue),
      breaker_since_ms_(SystemClock::Instance().NowMs()),
      half_open_timer_(io),
      shared_(config.limits == IntegrationConfig::Limits::kShared ? shared : nullptr),
      self_(std::make_shared<Integration*>(this)),
      lease_retry_timer_(io),
      poll_timer_(io),
      renew_timer_(io) {
  if (config.rate_limit) {
    bucket_.emplace(config.rate_limit->per_second, config.rate_limit->burst, NowUs());
    gcra_ = GcraFor(*config.rate_limit);
  }
  if (metrics_ != nullptr) metrics_->breaker_state->Set(0);
  if (shared_ != nullptr) {
    // The first poll also tells at once whether the store is there.
    PollShared();
    RenewLeases();
  }
}

Integration::~Integration() {
  self_.reset();  // answers still on their way from the runner are dropped
  half_open_timer_.cancel();
  lease_retry_timer_.cancel();
  poll_timer_.cancel();
  renew_timer_.cancel();
  for (auto& [raw, call] : active_) {
    call->finished = true;
    call->timer.cancel();
    if (call->transfer != 0) client_.Cancel(call->transfer);
  }
  for (auto& [ticket, call] : queued_) {
    call->finished = true;
    call->timer.cancel();
  }
}

int64_t Integration::NowUs() const {
  return std::chrono::duration_cast<microseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

void Integration::Call(EgressCall call, Callback done) {
  auto pending = std::make_shared<Pending>(io_);
  pending->done = std::move(done);
  if (shut_down_) {
    Finish(pending, ShutdownResult(0));
    return;
  }
  // Everything below is decided on this thread in microseconds; a rejection costs no I/O.
  const bool has_auth = !auth_header_name_.empty();
  bool idempotency_key = !call.idempotency_key.empty();
  HeaderList& headers = pending->headers;
  headers.reserve(call.headers.size() + 4);
  for (auto& [name, value] : call.headers) {
    std::string lower = AsciiLower(name);
    if (Dropped(lower, has_auth)) continue;
    if (lower == "idempotency-key") {
      if (!call.idempotency_key.empty()) continue;  // the action's own key wins
      idempotency_key = true;
    }
    if (has_auth && lower == AsciiLower(auth_header_name_)) continue;
    headers.emplace_back(std::move(name), std::move(value));
  }
  if (has_auth) headers.emplace_back(auth_header_name_, auth_header_value_);
  // The call's own span is a child of the caller's context (a job attempt), or starts a
  // trace; the upstream sees the call's span as its parent.
  pending->parent_traceparent = std::move(call.traceparent);
  call.traceparent = ChildTraceparent(pending->parent_traceparent);
  if (trace::Enabled()) pending->started_unix_ns = trace::NowUnixNs();
  headers.emplace_back("traceparent", call.traceparent);
  if (!call.job_id.empty()) headers.emplace_back("X-Firebreak-Job-Id", call.job_id);
  if (!call.idempotency_key.empty()) headers.emplace_back("Idempotency-Key", call.idempotency_key);
  pending->replay_safe = ReplaySafe(call.method, idempotency_key);
  pending->url = url_base_ + call.target;
  pending->call = std::move(call);

  const int64_t now = NowUs();
  pending->deadline_us = now + config_.timeout.count() * 1000;
  if (SharedNow()) {
    // The shared breaker as last heard (≤ kSharedPoll old): no I/O to refuse a call.
    if (shared_breaker_.state == BreakerState::kOpen && now < shared_open_until_us_) {
      Reject(pending, EgressResult::Kind::kRejectedOpen, "circuit breaker open",
             std::chrono::ceil<milliseconds>(microseconds(shared_open_until_us_ - now)));
      return;
    }
  } else {
    bool changed = false;
    breaker_.Advance(now, &changed);
    if (changed) NoteBreaker(breaker_.state(), "open_for elapsed");
    if (breaker_.state() == BreakerState::kOpen) {
      Reject(pending, EgressResult::Kind::kRejectedOpen, "circuit breaker open",
             std::chrono::ceil<milliseconds>(microseconds(breaker_.OpenUntilUs() - now)));
      return;
    }
  }
  pending->ticket = next_ticket_++;
  switch (bulkhead_.Acquire(pending->ticket)) {
    case Bulkhead::Admission::kNow:
      active_.emplace(pending.get(), pending);
      Admitted(pending);
      return;
    case Bulkhead::Admission::kQueued: {
      queued_.emplace(pending->ticket, pending);
      pending->timer.expires_after(config_.timeout);
      std::weak_ptr<Pending> weak = pending;
      pending->timer.async_wait([this, weak](const boost::system::error_code& ec) {
        std::shared_ptr<Pending> waiting = weak.lock();
        if (ec || !waiting || waiting->finished || queued_.count(waiting->ticket) == 0) return;
        bulkhead_.Cancel(waiting->ticket);
        queued_.erase(waiting->ticket);
        Reject(waiting, EgressResult::Kind::kRejectedFull,
               "no free slot of max_concurrency = " + std::to_string(config_.max_concurrency) +
                   " within " + FormatDuration(config_.timeout),
               std::nullopt);
      });
      return;
    }
    case Bulkhead::Admission::kRejected:
      Reject(pending, EgressResult::Kind::kRejectedFull,
             "concurrency cap full: " + std::to_string(bulkhead_.in_flight()) + " in flight, " +
                 std::to_string(bulkhead_.queued()) + " queued (max_queue = " +
                 std::to_string(config_.max_queue) + ")",
             std::nullopt);
      return;
  }
}

void Integration::Wait(const std::shared_ptr<Pending>& call, microseconds delay,
                       void (Integration::*then)(const std::shared_ptr<Pending>&)) {
  call->timer.expires_after(delay);
  std::weak_ptr<Pending> weak = call;
  call->timer.async_wait([this, weak, then](const boost::system::error_code& ec) {
    std::shared_ptr<Pending> pending = weak.lock();
    if (ec || !pending || pending->finished) return;
    (this->*then)(pending);
  });
}

void Integration::StartAttempt(const std::shared_ptr<Pending>& call) {
  const int64_t now = NowUs();
  const int64_t budget_us = config_.timeout.count() * 1000;
  if (now < gate_until_us_) {
    // The upstream asked for a pause (429/503 with Retry-After): nobody calls it before.
    if (gate_until_us_ - now > budget_us) {
      Reject(call, EgressResult::Kind::kRateLimited, "upstream asked to wait (Retry-After)",
             std::chrono::ceil<milliseconds>(microseconds(gate_until_us_ - now)));
      return;
    }
    Wait(call, microseconds(gate_until_us_ - now), &Integration::StartAttempt);
    return;
  }
  if (bucket_ && SharedNow()) {
    ReserveShared(call);
    return;
  }
  if (bucket_) {
    std::optional<int64_t> wait = bucket_->Reserve(now, budget_us);
    if (!wait) {
      double deficit = 1 - bucket_->Available(now);
      auto retry_after = milliseconds(
          static_cast<int64_t>(deficit / std::max(config_.rate_limit->per_second, 1e-9) * 1000) +
          1);
      Reject(call, EgressResult::Kind::kRateLimited,
             "rate limit " + config_.rate_limit->rate + ": no token within " +
                 FormatDuration(config_.timeout),
             retry_after);
      return;
    }
    if (*wait > 0) {
      Wait(call, microseconds(*wait), &Integration::Send);
      return;
    }
  }
  Send(call);
}

void Integration::Send(const std::shared_ptr<Pending>& call) {
  const int64_t now = NowUs();
  if (now < gate_until_us_) {  // a Retry-After arrived while this call waited for its token
    if (gate_until_us_ - now > config_.timeout.count() * 1000) {
      Reject(call, EgressResult::Kind::kRateLimited, "upstream asked to wait (Retry-After)",
             std::chrono::ceil<milliseconds>(microseconds(gate_until_us_ - now)));
      return;
    }
    Wait(call, microseconds(gate_until_us_ - now), &Integration::Send);
    return;
  }
  if (SharedNow()) {
    if (shared_breaker_.state == BreakerState::kClosed) {
      Transmit(call);
      return;
    }
    if (shared_breaker_.state == BreakerState::kOpen && now < shared_open_until_us_) {
      Reject(call, EgressResult::Kind::kRejectedOpen, "circuit breaker open",
             std::chrono::ceil<milliseconds>(microseconds(shared_open_until_us_ - now)));
      return;
    }
    // Half-open (or open past its time): one probe across every process.
    const std::string name = config_.name;
    const int64_t probe_lease_ms = config_.timeout.count() + 1'000;
    std::weak_ptr<Pending> weak = call;
    OnStore<SharedBreakerView>(
        [name, probe_lease_ms](LimitStore& store) { return store.ClaimProbe(name, probe_lease_ms); },
        [this, weak](Result<SharedBreakerView> view) {
          std::shared_ptr<Pending> pending = weak.lock();
          if (!view.ok()) {
            EnterFallback(view.status());
            if (pending && !pending->finished) Send(pending);
            return;
          }
          ApplySharedBreaker(*view, "open_for elapsed");
          if (!pending || pending->finished) {
            if (view->probe) {
              OnStore<SharedBreakerView>(
                  [name = config_.name, breaker = config_.breaker](LimitStore& store) {
                    return store.Record(name, breaker, CallVerdict::kAbandoned, true);
                  },
                  [](Result<SharedBreakerView>) {});
            }
            return;
          }
          if (!view->allowed) {
            std::optional<milliseconds> retry_after;
            if (view->open_left_ms > 0) retry_after = milliseconds(view->open_left_ms);
            Reject(pending, EgressResult::Kind::kRejectedOpen,
                   view->state == BreakerState::kHalfOpen ? "circuit breaker half-open: probe busy"
                                                          : "circuit breaker open",
                   retry_after);
            return;
          }
          pending->shared_probe = view->probe;
          Transmit(pending);
        });
    return;
  }
  bool changed = false;
  breaker_.Advance(now, &changed);
  if (changed) NoteBreaker(breaker_.state(), "open_for elapsed");
  CircuitBreaker::Permit permit = breaker_.TryAcquire(now);
  if (!permit.allowed) {
    std::optional<milliseconds> retry_after;
    if (permit.retry_after_us > 0) {
      retry_after = std::chrono::ceil<milliseconds>(microseconds(permit.retry_after_us));
    }
    Reject(call, EgressResult::Kind::kRejectedOpen,
           breaker_.state() == BreakerState::kHalfOpen ? "circuit breaker half-open: probe busy"
                                                       : "circuit breaker open",
           retry_after);
    return;
  }
  call->probe = permit.probe;
  Transmit(call);
}

void Integration::Transmit(const std::shared_ptr<Pending>& call) {
  ++call->attempts;
  ClientRequest request;
  request.method = call->call.method;
  request.url = call->url;
  request.headers = call->headers;
  request.body = call->call.body;
  request.timeout = config_.timeout;
  std::weak_ptr<Pending> weak = call;
  call->transfer = client_.Send(std::move(request), [this, weak](ClientResponse response) {
    std::shared_ptr<Pending> pending = weak.lock();
    if (!pending || pending->finished) return;
    OnResponse(pending, std::move(response));
  });
}

void Integration::OnResponse(const std::shared_ptr<Pending>& call, ClientResponse response) {
  call->transfer = 0;
  const int64_t now = NowUs();
  AttemptOutcome& outcome = response.outcome;
  const bool answered = outcome.kind == AttemptOutcome::Kind::kResponse;
  if (answered && (outcome.status == 429 || outcome.status == 503)) {
    std::string header = HeaderValue(response.headers, "retry-after");
    if (!header.empty()) {
      outcome.retry_after =
          ParseRetryAfter(header, std::chrono::duration_cast<milliseconds>(
                                      std::chrono::system_clock::now().time_since_epoch())
                                      .count());
    }
    if (outcome.retry_after) {
      gate_until_us_ = std::max(gate_until_us_, now + outcome.retry_after->count() * 1000);
    }
  }
  if (metrics_ != nullptr) {
    metrics_->duration->Observe(std::chrono::duration<double>(response.elapsed).count());
    prometheus::Counter* counter = metrics_->error;
    if (outcome.kind == AttemptOutcome::Kind::kTimeout) {
      counter = metrics_->timeout;
    } else if (answered && outcome.status == 429) {
      counter = metrics_->rate_limited;
    } else if (answered && outcome.status < 500) {
      counter = metrics_->ok;
    }
    counter->Increment();
  }
  const bool failed = CountsAsFailure(outcome);
  const std::string why = failed ? (answered ? "HTTP " + std::to_string(outcome.status)
                                             : response.error)
                                 : "probe succeeded";
  call->last = std::move(response);
  if (call->shared_probe || (SharedNow() && !call->probe)) {
    // The shared window hears of it; its answer says whether this opened the breaker.
    const bool probe = call->shared_probe;
    call->shared_probe = false;
    const std::string name = config_.name;
    const CircuitBreakerConfig breaker = config_.breaker;
    const CallVerdict verdict = failed ? CallVerdict::kFailure : CallVerdict::kSuccess;
    std::weak_ptr<Pending> weak = call;
    OnStore<SharedBreakerView>(
        [name, breaker, verdict, probe](LimitStore& store) {
          return store.Record(name, breaker, verdict, probe);
        },
        [this, weak, failed, why](Result<SharedBreakerView> view) {
          std::shared_ptr<Pending> pending = weak.lock();
          std::optional<BreakerState> changed;
          if (view.ok()) {
            ApplySharedBreaker(*view, why);
            if (view->changed) changed = view->state;
          } else {
            EnterFallback(view.status());
          }
          if (pending && !pending->finished) Conclude(pending, failed, changed);
        });
    return;
  }
  std::optional<BreakerState> changed =
      failed ? breaker_.OnFailure(now, call->probe) : breaker_.OnSuccess(now, call->probe);
  call->probe = false;
  if (changed) NoteBreaker(changed, why);
  Conclude(call, failed, changed);
}

void Integration::Conclude(const std::shared_ptr<Pending>& call, bool failed,
                           std::optional<BreakerState> changed) {
  const int64_t now = NowUs();
  const AttemptOutcome& outcome = call->last.outcome;
  const bool answered = outcome.kind == AttemptOutcome::Kind::kResponse;
  RetryPlan plan = PlanRetry(config_.retry, call->attempts, outcome, call->replay_safe, rng_);
  const std::string what =
      answered ? "HTTP " + std::to_string(outcome.status) : call->last.error;
  if (plan.retry) {
    log::Warn("integration call failed; retrying",
              {{"integration", config_.name},
               {"method", call->call.method},
               {"path", call->call.target.substr(0, call->call.target.find('?'))},
               {"attempt", call->attempts},
               {"error", what},
               {"retry_in_ms", static_cast<int64_t>(plan.delay.count())},
               {"reason", plan.reason},
               {"job_id", call->call.job_id},
               {"trace_id", TraceIdOf(call->call.traceparent)}});
    Wait(call, plan.delay, &Integration::StartAttempt);
    return;
  }

  EgressResult result;
  result.attempts = call->attempts;
  result.opened_breaker = changed && *changed == BreakerState::kOpen;
  ClientResponse& last = call->last;
  switch (last.outcome.kind) {
    case AttemptOutcome::Kind::kResponse:
      result.kind = EgressResult::Kind::kResponse;
      result.status = last.outcome.status;
      result.headers = std::move(last.headers);
      result.body = std::move(last.body);
      result.retry_after = last.outcome.retry_after;
      break;
    case AttemptOutcome::Kind::kTimeout:
      result.kind = EgressResult::Kind::kTimeout;
      result.error = "timed out after " + FormatDuration(config_.timeout);
      break;
    case AttemptOutcome::Kind::kConnectFailed:
    case AttemptOutcome::Kind::kConnectionError:
      result.kind = EgressResult::Kind::kConnectionError;
      result.error = last.error;
      break;
  }
  if (result.opened_breaker && !result.retry_after) {
    const int64_t open_until = shared_breaker_.state == BreakerState::kOpen && SharedNow()
                                   ? shared_open_until_us_
                                   : breaker_.OpenUntilUs();
    result.retry_after =
        std::chrono::ceil<milliseconds>(microseconds(std::max<int64_t>(0, open_until - now)));
  }
  if (failed || (answered && last.outcome.status == 429)) {
    log::Warn("integration call failed",
              {{"integration", config_.name},
               {"method", call->call.method},
               {"path", call->call.target.substr(0, call->call.target.find('?'))},
               {"attempts", call->attempts},
               {"error", what},
               {"reason", plan.reason},
               {"job_id", call->call.job_id},
               {"trace_id", TraceIdOf(call->call.traceparent)}});
  }
  Finish(call, std::move(result));
}

void Integration::Reject(const std::shared_ptr<Pending>& call, EgressResult::Kind kind,
                         std::string error, std::optional<milliseconds> retry_after) {
  if (metrics_ != nullptr) {
    switch (kind) {
      case EgressResult::Kind::kRejectedOpen:
        metrics_->rejected_open->Increment();
        break;
      case EgressResult::Kind::kRateLimited:
        metrics_->rate_limited->Increment();
        break;
      case EgressResult::Kind::kRejectedFull:
        metrics_->rejected_full->Increment();
        break;
      default:
        break;
    }
  }
  EgressResult result;
  result.kind = kind;
  result.error = std::move(error);
  result.attempts = call->attempts;
  result.retry_after = retry_after;
  Finish(call, std::move(result));
}

void Integration::Finish(const std::shared_ptr<Pending>& call, EgressResult result) {
  if (call->finished) return;
  call->finished = true;
  call->timer.cancel();
  if (call->transfer != 0) {
    client_.Cancel(call->transfer);
    call->transfer = 0;
  }
  if (call->probe) {
    breaker_.OnAbandoned(true);
    call->probe = false;
  }
  if (call->shared_probe) {
    call->shared_probe = false;
    const std::string name = config_.name;
    const CircuitBreakerConfig breaker = config_.breaker;
    OnStore<SharedBreakerView>(
        [name, breaker](LimitStore& store) {
          return store.Record(name, breaker, CallVerdict::kAbandoned, true);
        },
        [](Result<SharedBreakerView>) {});
  }
  if (call->waiting_lease) {
    call->waiting_lease = false;
    auto it = std::find(lease_waiters_.begin(), lease_waiters_.end(), call);
    if (it != lease_waiters_.end()) lease_waiters_.erase(it);
  }
  const bool had_lease = !call->lease.empty();
  ReleaseLease(call);
  if (active_.erase(call.get()) > 0) ReleaseSlot();
  if (had_lease) PumpLeases();
  if (call->started_unix_ns != 0) RecordSpan(*call, result);
  boost::asio::post(io_, [done = std::move(call->done), result = std::move(result)]() mutable {
    done(std::move(result));
  });
}

void Integration::RecordSpan(const Pending& call, const EgressResult& result) const {
  // Without the query (it may carry tokens), and without a secret in the path.
  const std::string& target = call.call.target;
  const std::string url = url_shown_ + target.substr(0, target.find('?'));
  trace::Span span = trace::Span::For(call.call.method + " " + config_.name,
                                      trace::SpanKind::kClient, call.call.traceparent,
                                      call.parent_traceparent, call.started_unix_ns);
  span.end_unix_ns = trace::NowUnixNs();
  span.Set("http.request.method", call.call.method);
  span.Set("url.full", url);
  span.Set("firebreak.integration", config_.name);
  span.Set("firebreak.outcome", EgressResultKindName(result.kind));
  span.Set("firebreak.attempts", static_cast<int64_t>(result.attempts));
  if (!call.call.job_id.empty()) span.Set("firebreak.job_id", call.call.job_id);
  if (result.kind == EgressResult::Kind::kResponse) {
    span.Set("http.response.status_code", static_cast<int64_t>(result.status));
    span.error = result.status >= 500;
    if (span.error) span.status_message = "HTTP " + std::to_string(result.status);
  } else {
    span.error = true;
    span.status_message = result.error;
  }
  trace::Record(span);
}

void Integration::ReleaseSlot() {
  std::optional<uint64_t> next = bulkhead_.Release();
  if (!next) return;
  auto it = queued_.find(*next);
  if (it == queued_.end()) {  // cannot happen: queued tickets are cancelled when they leave
    ReleaseSlot();
    return;
  }
  std::shared_ptr<Pending> call = std::move(it->second);
  queued_.erase(it);
  call->timer.cancel();
  active_.emplace(call.get(), call);
  Admitted(call);
}

void Integration::NoteBreaker(std::optional<BreakerState> changed, const std::string& why) {
  if (!changed) return;
  BreakerState state = *changed;
  breaker_since_ms_ = SystemClock::Instance().NowMs();
  if (metrics_ != nullptr) metrics_->breaker_state->Set(static_cast<double>(state));
  switch (state) {
    case BreakerState::kOpen:
      log::Warn("circuit breaker opened",
                {{"integration", config_.name},
                 {"state", BreakerStateName(state)},
                 {"error", why},
                 {"open_for_ms", static_cast<int64_t>(config_.breaker.open_for.count())}});
      ScheduleHalfOpen();
      break;
    case BreakerState::kHalfOpen:
      log::Info("circuit breaker half-open: probing",
                {{"integration", config_.name}, {"state", BreakerStateName(state)}});
      break;
    case BreakerState::kClosed:
      log::Info("circuit breaker closed",
                {{"integration", config_.name},
                 {"state", BreakerStateName(state)},
                 {"reason", why}});
      break;
  }
}

void Integration::ScheduleHalfOpen() {
  if (shared_ != nullptr && !fallback_) return;  // the poll shows the shared half-open
  // The state moves on its own at open_for, so the gauge and the log show it even when no
  // call arrives.
  half_open_timer_.expires_after(microseconds(std::max<int64_t>(0, breaker_.OpenUntilUs() - NowUs())));
  half_open_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec) return;
    bool changed = false;
    breaker_.Advance(NowUs(), &changed);
    if (changed) NoteBreaker(breaker_.state(), "open_for elapsed");
  });
}

void Integration::Shutdown() {
  shut_down_ = true;
  half_open_timer_.cancel();
  lease_retry_timer_.cancel();
  poll_timer_.cancel();
  renew_timer_.cancel();
  std::vector<std::shared_ptr<Pending>> calls;
  for (auto& [ticket, call] : queued_) {
    bulkhead_.Cancel(ticket);
    calls.push_back(call);
  }
  queued_.clear();
  for (auto& [raw, call] : active_) calls.push_back(call);
  for (const std::shared_ptr<Pending>& call : calls) {
    Finish(call, ShutdownResult(call->attempts));
  }
}

IntegrationSnapshot Integration::Snapshot() {
  const int64_t now = NowUs();
  IntegrationSnapshot snapshot;
  bool changed = false;
  snapshot.breaker = breaker_.Advance(now, &changed);
  if (changed) NoteBreaker(snapshot.breaker, "open_for elapsed");
  snapshot.breaker_since_ms = breaker_since_ms_;
  snapshot.failure_rate = breaker_.FailureRate(now);
  snapshot.calls_in_window = breaker_.CallsInWindow(now);
  snapshot.in_flight = bulkhead_.in_flight();
  snapshot.in_flight_process = bulkhead_.in_flight();
  snapshot.max_concurrency = bulkhead_.max_concurrent();
  snapshot.queued = bulkhead_.queued() + static_cast<int>(lease_waiters_.size());
  snapshot.max_queue = config_.max_queue;
  if (bucket_) snapshot.tokens = bucket_->Available(now);
  if (shared_ != nullptr) {
    snapshot.limits = fallback_ ? "shared_degraded" : "shared";
    if (!fallback_) {
      snapshot.breaker = shared_breaker_.state;
      if (snapshot.breaker == BreakerState::kOpen && now >= shared_open_until_us_) {
        snapshot.breaker = BreakerState::kHalfOpen;
      }
      snapshot.calls_in_window = shared_breaker_.calls;
      snapshot.failure_rate = shared_breaker_.calls == 0
                                  ? 0.0
                                  : static_cast<double>(shared_breaker_.failures) /
                                        static_cast<double>(shared_breaker_.calls);
      snapshot.in_flight = shared_in_flight_;
      if (shared_tokens_) snapshot.tokens = shared_tokens_;  // else the first poll is out
    }
  }
  return snapshot;
}

// ---- shared limits ----------------------------------------------------------------

template <typename T>
void Integration::OnStore(std::function<Result<T>(LimitStore&)> op,
                          std::function<void(Result<T>)> then) {
  std::weak_ptr<Integration*> weak = self_;
  boost::asio::io_context& io = io_;
  shared_->Post([weak, &io, op = std::move(op), then = std::move(then)](LimitStore& store) {
    auto result = std::make_shared<Result<T>>(op(store));
    boost::asio::post(io, [weak, then, result] {
      if (weak.expired()) return;
      then(std::move(*result));
    });
  });
}

std::string Integration::LeaseToken(uint64_t ticket) const {
  return shared_->instance() + ":" + std::to_string(ticket);
}

void Integration::Admitted(const std::shared_ptr<Pending>& call) {
  if (!SharedNow()) {
    StartAttempt(call);
    return;
  }
  call->waiting_lease = true;
  lease_waiters_.push_back(call);
  // The same bound as a wait for a local slot: `timeout` from the call's arrival.
  call->timer.expires_at(std::chrono::steady_clock::time_point(microseconds(call->deadline_us)));
  std::weak_ptr<Pending> weak = call;
  call->timer.async_wait([this, weak](const boost::system::error_code& ec) {
    std::shared_ptr<Pending> waiting = weak.lock();
    if (ec || !waiting || waiting->finished || !waiting->waiting_lease) return;
    Reject(waiting, EgressResult::Kind::kRejectedFull,
           "no free slot of the shared max_concurrency = " + std::to_string(config_.max_concurrency) +
               " within " + FormatDuration(config_.timeout),
           std::nullopt);
  });
  PumpLeases();
}

void Integration::PumpLeases() {
  if (!SharedNow() || lease_waiters_.empty()) return;
  if (acquiring_) {
    pump_again_ = true;
    return;
  }
  acquiring_ = true;
  pump_again_ = false;
  std::vector<uint64_t> tickets;
  std::vector<std::string> tokens;
  for (const std::shared_ptr<Pending>& call : lease_waiters_) {
    if (tickets.size() >= kLeaseBatch) break;
    tickets.push_back(call->ticket);
    tokens.push_back(LeaseToken(call->ticket));
  }
  const std::string name = config_.name;
  const int max = config_.max_concurrency;
  const int64_t lease_ms = config_.shared_lease.count();
  OnStore<LeaseGrant>(
      [name, max, lease_ms, tokens](LimitStore& store) {
        return store.Acquire(name, max, lease_ms, tokens);
      },
      [this, tickets](Result<LeaseGrant> grant) { OnLeases(tickets, grant); });
}

void Integration::OnLeases(const std::vector<uint64_t>& tickets, const Result<LeaseGrant>& grant) {
  acquiring_ = false;
  if (!grant.ok()) {
    EnterFallback(grant.status());
    return;
  }
  shared_in_flight_ = grant->in_flight;
  std::vector<std::shared_ptr<Pending>> granted;
  std::vector<std::string> orphans;  // granted to calls that left meanwhile
  for (size_t i = 0; i < static_cast<size_t>(grant->granted) && i < tickets.size(); ++i) {
    auto it = std::find_if(lease_waiters_.begin(), lease_waiters_.end(),
                           [&](const auto& call) { return call->ticket == tickets[i]; });
    if (it == lease_waiters_.end()) {
      orphans.push_back(LeaseToken(tickets[i]));
      continue;
    }
    std::shared_ptr<Pending> call = *it;
    lease_waiters_.erase(it);
    call->waiting_lease = false;
    call->lease = LeaseToken(tickets[i]);
    call->timer.cancel();
    granted.push_back(std::move(call));
  }
  if (!orphans.empty()) {
    const std::string name = config_.name;
    OnStore<int>([name, orphans](LimitStore& store) { return store.Release(name, orphans); },
                 [](Result<int>) {});
  }
  if (!lease_waiters_.empty()) {
    if (pump_again_ || static_cast<size_t>(grant->granted) == tickets.size()) {
      lease_backoff_ms_ = 0;
      boost::asio::post(io_, [weak = std::weak_ptr<Integration*>(self_)] {
        if (auto self = weak.lock()) (*self)->PumpLeases();
      });
    } else {
      // Full across processes: ask again soon (a release here asks at once).
      lease_backoff_ms_ = std::min(kMaxLeaseBackoffMs, std::max(2, lease_backoff_ms_ * 2));
      lease_retry_timer_.expires_after(milliseconds(lease_backoff_ms_));
      lease_retry_timer_.async_wait([this](const boost::system::error_code& ec) {
        if (!ec) PumpLeases();
      });
    }
  }
  pump_again_ = false;
  // Started last: a start may finish a call at once, which changes lease_waiters_.
  for (const std::shared_ptr<Pending>& call : granted) {
    if (!call->finished) StartAttempt(call);
  }
}

void Integration::ReleaseLease(const std::shared_ptr<Pending>& call) {
  if (call->lease.empty()) return;
  const std::string name = config_.name;
  std::vector<std::string> tokens = {std::move(call->lease)};
  call->lease.clear();
  OnStore<int>([name, tokens](LimitStore& store) { return store.Release(name, tokens); },
               [this](Result<int> in_flight) {
                 // A failed release is not worth a fallback: the lease expires on its own.
                 if (in_flight.ok()) shared_in_flight_ = *in_flight;
               });
}

void Integration::ReserveShared(const std::shared_ptr<Pending>& call) {
  const std::string name = config_.name;
  const GcraParams params = *gcra_;
  const int64_t budget_us = config_.timeout.count() * 1000;
  std::weak_ptr<Pending> weak = call;
  OnStore<TokenReservation>(
      [name, params, budget_us](LimitStore& store) {
        return store.Reserve(name, params, budget_us);
      },
      [this, weak](Result<TokenReservation> reservation) {
        std::shared_ptr<Pending> pending = weak.lock();
        if (!reservation.ok()) EnterFallback(reservation.status());
        if (!pending || pending->finished) return;
        if (!reservation.ok()) {
          StartAttempt(pending);  // now on the per-process bucket
          return;
        }
        if (!reservation->allowed) {
          Reject(pending, EgressResult::Kind::kRateLimited,
                 "rate limit " + config_.rate_limit->rate + " (shared): no token within " +
                     FormatDuration(config_.timeout),
                 std::chrono::ceil<milliseconds>(microseconds(reservation->wait_us)));
          return;
        }
        if (reservation->wait_us > 0) {
          Wait(pending, microseconds(reservation->wait_us), &Integration::Send);
          return;
        }
        Send(pending);
      });
}

void Integration::ApplySharedBreaker(const SharedBreakerView& view, const std::string& why) {
  // Open → half-open is noted when the store says so (the next poll), which is what
  // moves the gauge and logs "half-open: probing" in every process.
  const BreakerState before = shared_breaker_.state;
  shared_breaker_ = view;
  shared_open_until_us_ = NowUs() + view.open_left_ms * 1000;
  if (view.state != before) NoteBreaker(view.state, why);
}

void Integration::EnterFallback(const Status& why) {
  if (shared_ == nullptr || shut_down_) return;
  fallback_until_us_ = NowUs() + kFallbackHold.count();
  if (fallback_) return;
  fallback_ = true;
  log::Warn("shared limits unavailable: counting this integration's limits per process "
            "until the store answers",
            {{"integration", config_.name},
             {"backend", std::string(shared_->backend())},
             {"error", why.message()}});
  if (metrics_ != nullptr) metrics_->shared_limits_degraded->Set(1);
  // Calls waiting for a lease hold a local slot: under per-process limits that is enough.
  std::deque<std::shared_ptr<Pending>> waiting;
  waiting.swap(lease_waiters_);
  lease_retry_timer_.cancel();
  for (const std::shared_ptr<Pending>& call : waiting) {
    call->waiting_lease = false;
    call->timer.cancel();
  }
  for (const std::shared_ptr<Pending>& call : waiting) {
    if (!call->finished) StartAttempt(call);
  }
}

void Integration::PollShared() {
  if (shut_down_) return;
  if (!polling_) {
    polling_ = true;
    const std::string name = config_.name;
    const CircuitBreakerConfig breaker = config_.breaker;
    const std::optional<GcraParams> gcra = gcra_;
    OnStore<SharedLimitsView>(
        [name, breaker, gcra](LimitStore& store) {
          return store.Read(name, breaker, gcra ? &*gcra : nullptr);
        },
        [this](Result<SharedLimitsView> view) {
          polling_ = false;
          if (!view.ok()) {
            EnterFallback(view.status());
            return;
          }
          if (fallback_ && NowUs() >= fallback_until_us_) {
            fallback_ = false;
            log::Info("shared limits restored: counting across processes again",
                      {{"integration", config_.name}, {"backend", std::string(shared_->backend())}});
            if (metrics_ != nullptr) metrics_->shared_limits_degraded->Set(0);
          }
          shared_in_flight_ = view->in_flight;
          shared_tokens_ = view->tokens;
          if (!fallback_) ApplySharedBreaker(view->breaker, "open_for elapsed");
        });
  }
  poll_timer_.expires_after(kSharedPoll);
  poll_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (!ec) PollShared();
  });
}

void Integration::RenewLeases() {
  if (shut_down_) return;
  std::vector<std::string> tokens;
  for (const auto& [raw, call] : active_) {
    if (!call->lease.empty()) tokens.push_back(call->lease);
  }
  if (!tokens.empty()) {
    const std::string name = config_.name;
    const int64_t lease_ms = config_.shared_lease.count();
    const size_t asked = tokens.size();
    OnStore<int>(
        [name, lease_ms, tokens](LimitStore& store) { return store.Renew(name, lease_ms, tokens); },
        [this, asked](Result<int> renewed) {
          if (!renewed.ok()) {
            EnterFallback(renewed.status());
          } else if (static_cast<size_t>(*renewed) < asked) {
            // Some expired before their renewal (a store stall longer than the lease, or
            // a call that just ended): their slots may be someone else's by now.
            log::Debug("shared limits: leases expired before renewal",
                       {{"integration", config_.name},
                        {"expired", static_cast<int64_t>(asked - static_cast<size_t>(*renewed))}});
          }
        });
  }
  renew_timer_.expires_after(milliseconds(LeaseRenewInterval(config_.shared_lease.count())));
  renew_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (!ec) RenewLeases();
  });
}

}  // namespace firebreak::egress
