// Whether an integration call is tried again, and after how long (DESIGN §2 `retry`).
// Pure: the decision is a function of the policy, the failed attempt and a random
// source, kept apart from the code that sleeps and resends (after Envoy's split of
// retry policy and retry state).
#pragma once

#include <chrono>
#include <optional>
#include <random>
#include <string_view>

#include "config/config.h"

namespace firebreak::egress {

// What one attempt came back with.
struct AttemptOutcome {
  enum class Kind {
    kResponse,       // the upstream answered with `status`
    kConnectFailed,  // no connection was made: the request never left (always safe to resend)
    kConnectionError,  // the connection broke mid-exchange: the upstream may have acted
    kTimeout,          // no full answer within the attempt's timeout (the transfer was aborted)
  };
  Kind kind = Kind::kResponse;
  int status = 0;  // kResponse
  std::optional<std::chrono::milliseconds> retry_after;  // from a Retry-After header
};

// A request may be sent twice only if doing so cannot repeat its effect: the method is
// idempotent by RFC 9110 (GET, HEAD, OPTIONS, TRACE, PUT, DELETE) or it carries an
// Idempotency-Key the upstream dedupes on.
bool ReplaySafe(std::string_view method, bool has_idempotency_key);

// 5xx other than 501/505 (which will not change on a resend), 429, 408.
bool RetryableStatus(int status);
// True when the outcome counts against the upstream in the circuit breaker: timeouts,
// connection failures and 5xx. 4xx (including 429) mean a healthy upstream said no.
bool CountsAsFailure(const AttemptOutcome& outcome);

struct RetryPlan {
  bool retry = false;
  std::chrono::milliseconds delay{0};
  // For the log: "backoff", "retry_after", "exhausted", "not_retryable",
  // "not_replay_safe", "retry_after_too_long", "success".
  const char* reason = "";
};

// After attempt `attempt` (1-based) ended with `outcome`: retry while attempts remain, the
// outcome is retryable and (except for kConnectFailed) the request is replay safe. The
// delay is backoff[min(attempt, size) - 1], randomized to [d/2, 3d/2) when jitter is on
// (so the configured schedule holds on average while clients spread out); a Retry-After
// is honoured as the minimum wait, and one longer than the largest configured backoff is
// not waited out here: the answer goes back to the caller, who can retry later.
RetryPlan PlanRetry(const IntegrationRetryConfig& policy, int attempt,
                    const AttemptOutcome& outcome, bool replay_safe, std::mt19937_64& rng);

}  // namespace firebreak::egress
