// The retry decision, kept pure: given the policy, the attempt that just failed and
// a random source, when does the next attempt run (or does it at all).
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <random>

namespace firebreak {

enum class Jitter {
  kNone,   // exactly base * factor^(attempt-1), capped
  kFull,   // uniform in [0, capped delay] (AWS "full jitter")
  kEqual,  // capped/2 + uniform in [0, capped/2]
};

struct BackoffPolicy {
  std::chrono::milliseconds base{250};
  double factor = 4;
  std::chrono::milliseconds max{5 * 60 * 1000};
  Jitter jitter = Jitter::kFull;
};

// Delay before the attempt after `failed_attempt` (1-based), without jitter:
// min(max, base * factor^(failed_attempt-1)).
std::chrono::milliseconds BackoffCeiling(const BackoffPolicy& policy, int failed_attempt);

// The delay with the policy's jitter applied, drawn from `rng`.
std::chrono::milliseconds BackoffDelay(const BackoffPolicy& policy, int failed_attempt,
                                       std::mt19937_64& rng);

struct RetryDecision {
  bool retry = false;                  // false: dead-letter it
  std::chrono::milliseconds delay{0};  // when retry
  const char* reason = "";  // for the log: "backoff", "retry_after", "exhausted", "not_retryable"
};

// `retry_after`, when the handler or upstream gave one, wins over the backoff.
RetryDecision DecideRetry(const BackoffPolicy& policy, int failed_attempt, int max_attempts,
                          bool retryable, std::optional<std::chrono::milliseconds> retry_after,
                          std::mt19937_64& rng);

}  // namespace firebreak
