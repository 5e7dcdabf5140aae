#include "egress/retry_policy.h"

#include <algorithm>

namespace firebreak::egress {

using std::chrono::milliseconds;

bool ReplaySafe(std::string_view method, bool has_idempotency_key) {
  if (has_idempotency_key) return true;
  return method == "GET" || method == "HEAD" || method == "OPTIONS" || method == "TRACE" ||
         method == "PUT" || method == "DELETE";
}

bool RetryableStatus(int status) {
  if (status == 408 || status == 429) return true;
  return status >= 500 && status <= 599 && status != 501 && status != 505;
}

bool CountsAsFailure(const AttemptOutcome& outcome) {
  return outcome.kind != AttemptOutcome::Kind::kResponse || outcome.status >= 500;
}

RetryPlan PlanRetry(const IntegrationRetryConfig& policy, int attempt,
                    const AttemptOutcome& outcome, bool replay_safe, std::mt19937_64& rng) {
  using Kind = AttemptOutcome::Kind;
  if (outcome.kind == Kind::kResponse && !RetryableStatus(outcome.status)) {
    return {false, milliseconds(0), outcome.status < 400 ? "success" : "not_retryable"};
  }
  if (attempt >= policy.attempts) return {false, milliseconds(0), "exhausted"};
  if (outcome.kind != Kind::kConnectFailed && !replay_safe) {
    return {false, milliseconds(0), "not_replay_safe"};
  }
  const std::vector<milliseconds>& schedule = policy.backoff;
  milliseconds base = schedule.empty()
                          ? milliseconds(0)
                          : schedule[static_cast<size_t>(std::min<int>(
                                attempt, static_cast<int>(schedule.size())) - 1)];
  milliseconds delay = base;
  if (policy.jitter && base.count() > 0) {
    std::uniform_int_distribution<int64_t> spread(base.count() / 2, base.count() * 3 / 2);
    delay = milliseconds(spread(rng));
  }
  if (outcome.retry_after) {
    milliseconds longest =
        schedule.empty() ? milliseconds(0) : *std::max_element(schedule.begin(), schedule.end());
    if (*outcome.retry_after > longest) return {false, milliseconds(0), "retry_after_too_long"};
    if (*outcome.retry_after >= delay) return {true, *outcome.retry_after, "retry_after"};
  }
  return {true, delay, "backoff"};
}

}  // namespace firebreak::egress
