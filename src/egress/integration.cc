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
  uint64_t transfer = 0;  // the running HTTP transfer, 0 when none
  bool finished = false;
  ClientResponse last;  // the last attempt's answer, for the final result
  std::string parent_traceparent;  // the caller's context; call.traceparent is this call's
  int64_t started_unix_ns = 0;     // 0 when tracing is off
  boost::asio::steady_timer timer;  // queue deadline, waits for a token, backoff
};

Integration::Integration(const IntegrationConfig& config, boost::asio::io_context& io,
                         HttpClient& client, IntegrationMetrics* metrics)
    : config_(config),
      io_(io),
      client_(client),
      metrics_(metrics),
      auth_header_name_(!config.auth                                          ? ""
                        : config.auth->kind == IntegrationAuth::Kind::kBearer ? "Authorization"
                                                                              : config.auth->header_name),
      auth_header_value_(!config.auth ? ""
                         : config.auth->kind == IntegrationAuth::Kind::kBearer
                             ? "Bearer " + config.auth->secret.value
                             : config.auth->secret.value),
      breaker_(config.breaker),
      bulkhead_(config.max_concurrency, config.max_queue),
      breaker_since_ms_(SystemClock::Instance().NowMs()),
      half_open_timer_(io) {
  if (config.rate_limit) {
    bucket_.emplace(config.rate_limit->per_second, config.rate_limit->burst, NowUs());
  }
  if (metrics_ != nullptr) metrics_->breaker_state->Set(0);
}

Integration::~Integration() {
  half_open_timer_.cancel();
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
  pending->url = config_.base_url + call.target;
  pending->call = std::move(call);

  const int64_t now = NowUs();
  bool changed = false;
  breaker_.Advance(now, &changed);
  if (changed) NoteBreaker(breaker_.state(), "open_for elapsed");
  if (breaker_.state() == BreakerState::kOpen) {
    Reject(pending, EgressResult::Kind::kRejectedOpen, "circuit breaker open",
           std::chrono::ceil<milliseconds>(microseconds(breaker_.OpenUntilUs() - now)));
    return;
  }
  pending->ticket = next_ticket_++;
  switch (bulkhead_.Acquire(pending->ticket)) {
    case Bulkhead::Admission::kNow:
      active_.emplace(pending.get(), pending);
      StartAttempt(pending);
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
  std::optional<BreakerState> changed =
      failed ? breaker_.OnFailure(now, call->probe) : breaker_.OnSuccess(now, call->probe);
  call->probe = false;
  if (changed) {
    NoteBreaker(changed, failed ? (answered ? "HTTP " + std::to_string(outcome.status)
                                            : response.error)
                                : "probe succeeded");
  }

  RetryPlan plan = PlanRetry(config_.retry, call->attempts, outcome, call->replay_safe, rng_);
  const std::string what = answered ? "HTTP " + std::to_string(outcome.status) : response.error;
  call->last = std::move(response);
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
    result.retry_after = std::chrono::ceil<milliseconds>(
        microseconds(std::max<int64_t>(0, breaker_.OpenUntilUs() - now)));
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
  if (active_.erase(call.get()) > 0) ReleaseSlot();
  if (call->started_unix_ns != 0) RecordSpan(*call, result);
  boost::asio::post(io_, [done = std::move(call->done), result = std::move(result)]() mutable {
    done(std::move(result));
  });
}

void Integration::RecordSpan(const Pending& call, const EgressResult& result) const {
  trace::Span span = trace::Span::For(call.call.method + " " + config_.name,
                                      trace::SpanKind::kClient, call.call.traceparent,
                                      call.parent_traceparent, call.started_unix_ns);
  span.end_unix_ns = trace::NowUnixNs();
  span.Set("http.request.method", call.call.method);
  // Without the query: it may carry tokens.
  span.Set("url.full", std::string_view(call.url).substr(0, call.url.find('?')));
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
  StartAttempt(call);
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
  snapshot.max_concurrency = bulkhead_.max_concurrent();
  snapshot.queued = bulkhead_.queued();
  snapshot.max_queue = config_.max_queue;
  if (bucket_) snapshot.tokens = bucket_->Available(now);
  return snapshot;
}

}  // namespace firebreak::egress
