#include "queue/backoff.h"

#include <algorithm>
#include <cmath>

namespace firebreak {

std::chrono::milliseconds BackoffCeiling(const BackoffPolicy& policy, int failed_attempt) {
  double exponent = std::max(0, failed_attempt - 1);
  double ms = static_cast<double>(policy.base.count()) * std::pow(policy.factor, exponent);
  double cap = static_cast<double>(policy.max.count());
  if (!(ms < cap)) ms = cap;  // also catches inf/nan from huge exponents
  return std::chrono::milliseconds(static_cast<int64_t>(ms));
}

std::chrono::milliseconds BackoffDelay(const BackoffPolicy& policy, int failed_attempt,
                                       std::mt19937_64& rng) {
  int64_t ceiling = BackoffCeiling(policy, failed_attempt).count();
  switch (policy.jitter) {
    case Jitter::kNone:
      return std::chrono::milliseconds(ceiling);
    case Jitter::kFull:
      return std::chrono::milliseconds(std::uniform_int_distribution<int64_t>(0, ceiling)(rng));
    case Jitter::kEqual:
      return std::chrono::milliseconds(
          ceiling / 2 + std::uniform_int_distribution<int64_t>(0, ceiling - ceiling / 2)(rng));
  }
  return std::chrono::milliseconds(ceiling);
}

RetryDecision DecideRetry(const BackoffPolicy& policy, int failed_attempt, int max_attempts,
                          bool retryable, std::optional<std::chrono::milliseconds> retry_after,
                          std::mt19937_64& rng) {
  if (!retryable) return {false, std::chrono::milliseconds(0), "not_retryable"};
  if (failed_attempt >= max_attempts) return {false, std::chrono::milliseconds(0), "exhausted"};
  if (retry_after) return {true, *retry_after, "retry_after"};
  return {true, BackoffDelay(policy, failed_attempt, rng), "backoff"};
}

}  // namespace firebreak
