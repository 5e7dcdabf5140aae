#include "egress/shared/limit_store.h"

#include <algorithm>
#include <cmath>

#include "egress/shared/redis/redis_limit_store.h"
#include "egress/shared/sqlite/sqlite_limit_store.h"

namespace firebreak::egress {

int64_t LeaseRenewInterval(int64_t lease_ms) { return std::max<int64_t>(50, lease_ms / 3); }

int LeasesGrantable(int live, int max, int wanted) {
  return std::clamp(max - live, 0, std::max(0, wanted));
}

GcraParams GcraFor(const RateLimitConfig& rate_limit) {
  GcraParams params;
  const double per_second = std::max(rate_limit.per_second, 1e-9);
  params.interval_us = std::max<int64_t>(1, static_cast<int64_t>(std::ceil(1e6 / per_second)));
  params.tolerance_us = static_cast<int64_t>(std::max(1, rate_limit.burst) - 1) * params.interval_us;
  return params;
}

GcraDecision GcraReserve(int64_t tat_us, int64_t now_us, const GcraParams& params,
                         int64_t max_wait_us) {
  const int64_t tat = std::max(tat_us, now_us);
  const int64_t wait = std::max<int64_t>(0, tat - params.tolerance_us - now_us);
  if (wait > max_wait_us) return {false, wait, tat_us};
  return {true, wait, tat + params.interval_us};
}

double GcraTokens(int64_t tat_us, int64_t now_us, const GcraParams& params) {
  const double burst = static_cast<double>(params.tolerance_us / params.interval_us + 1);
  if (tat_us <= now_us) return burst;
  return burst - static_cast<double>(tat_us - now_us) / static_cast<double>(params.interval_us);
}

namespace {

int64_t BucketMs(const CircuitBreakerConfig& config) {
  return std::max<int64_t>(1, config.window.count() / CircuitBreaker::kBuckets);
}

void Window(const SharedBreakerRow& row, const CircuitBreakerConfig& config, int64_t now_ms,
            int64_t* calls, int64_t* failures) {
  const int64_t bucket_ms = BucketMs(config);
  const int64_t oldest = now_ms / bucket_ms * bucket_ms - (CircuitBreaker::kBuckets - 1) * bucket_ms;
  *calls = 0;
  *failures = 0;
  for (const SharedBreakerRow::Bucket& bucket : row.buckets) {
    if (bucket.start_ms >= oldest && bucket.start_ms <= now_ms) {
      *calls += bucket.calls;
      *failures += bucket.failures;
    }
  }
}

SharedBreakerView View(SharedBreakerRow& row, const CircuitBreakerConfig* config, int64_t now_ms) {
  SharedBreakerView view;
  view.state = row.state;
  view.open_left_ms = row.state == BreakerState::kOpen ? std::max<int64_t>(0, row.open_until_ms - now_ms) : 0;
  if (config != nullptr) Window(row, *config, now_ms, &view.calls, &view.failures);
  return view;
}

}  // namespace

BreakerState SharedBreakerAdvance(SharedBreakerRow& row, int64_t now_ms) {
  if (row.state == BreakerState::kOpen && now_ms >= row.open_until_ms) {
    row.state = BreakerState::kHalfOpen;
    row.probe_until_ms = 0;
  }
  return row.state;
}

SharedBreakerView SharedBreakerRecord(SharedBreakerRow& row, const CircuitBreakerConfig& config,
                                      int64_t now_ms, CallVerdict verdict, bool probe) {
  const BreakerState before = SharedBreakerAdvance(row, now_ms);
  if (probe) {
    row.probe_until_ms = 0;
    if (row.state == BreakerState::kHalfOpen && verdict == CallVerdict::kFailure) {
      row.state = BreakerState::kOpen;
      row.open_until_ms = now_ms + config.open_for.count();
    } else if (row.state == BreakerState::kHalfOpen && verdict == CallVerdict::kSuccess) {
      // The upstream answers again: an empty window, as CircuitBreaker does.
      row.state = BreakerState::kClosed;
      row.buckets = {};
    }
  } else if (row.state == BreakerState::kClosed && verdict != CallVerdict::kAbandoned) {
    const int64_t bucket_ms = BucketMs(config);
    const int64_t start = now_ms / bucket_ms * bucket_ms;
    SharedBreakerRow::Bucket& bucket =
        row.buckets[static_cast<size_t>((now_ms / bucket_ms) % CircuitBreaker::kBuckets)];
    if (bucket.start_ms != start) bucket = {start, 0, 0};
    ++bucket.calls;
    if (verdict == CallVerdict::kFailure) {
      ++bucket.failures;
      int64_t calls = 0;
      int64_t failures = 0;
      Window(row, config, now_ms, &calls, &failures);
      if (calls >= std::max(1, config.min_calls) &&
          static_cast<double>(failures) >= config.failure_rate * static_cast<double>(calls)) {
        row.state = BreakerState::kOpen;
        row.open_until_ms = now_ms + config.open_for.count();
        row.probe_until_ms = 0;
      }
    }
  }
  SharedBreakerView view = View(row, &config, now_ms);
  view.changed = row.state != before;
  view.allowed = row.state != BreakerState::kOpen;
  return view;
}

SharedBreakerView SharedBreakerClaimProbe(SharedBreakerRow& row, int64_t now_ms,
                                          int64_t probe_lease_ms) {
  SharedBreakerAdvance(row, now_ms);
  SharedBreakerView view;
  if (row.state == BreakerState::kHalfOpen && row.probe_until_ms <= now_ms) {
    row.probe_until_ms = now_ms + probe_lease_ms;
    view = View(row, nullptr, now_ms);
    view.probe = true;
    view.allowed = true;
    return view;
  }
  view = View(row, nullptr, now_ms);
  view.allowed = row.state == BreakerState::kClosed;
  return view;
}

SharedBreakerView SharedBreakerRead(SharedBreakerRow& row, const CircuitBreakerConfig& config,
                                    int64_t now_ms) {
  SharedBreakerAdvance(row, now_ms);
  SharedBreakerView view = View(row, &config, now_ms);
  view.allowed = row.state != BreakerState::kOpen;
  return view;
}

std::vector<int64_t> BreakerFields(const SharedBreakerView& view) {
  return {static_cast<int64_t>(view.state), view.open_left_ms, view.calls, view.failures,
          view.changed ? 1 : 0, view.probe ? 1 : 0, view.allowed ? 1 : 0};
}

Result<SharedBreakerView> ParseBreakerFields(const std::vector<int64_t>& fields, size_t offset) {
  if (fields.size() < offset + kBreakerFields) {
    return Internal("shared limits: breaker reply has " + std::to_string(fields.size()) +
                    " fields, expected " + std::to_string(offset + kBreakerFields));
  }
  const int64_t state = fields[offset];
  if (state < 0 || state > 2) {
    return Internal("shared limits: bad breaker state " + std::to_string(state));
  }
  SharedBreakerView view;
  view.state = static_cast<BreakerState>(state);
  view.open_left_ms = std::max<int64_t>(0, fields[offset + 1]);
  view.calls = fields[offset + 2];
  view.failures = fields[offset + 3];
  view.changed = fields[offset + 4] != 0;
  view.probe = fields[offset + 5] != 0;
  view.allowed = fields[offset + 6] != 0;
  return view;
}

std::unique_ptr<LimitStore> MakeLimitStore(const QueueConfig& queue,
                                           std::chrono::milliseconds timeout) {
  if (queue.backend == "redis") return std::make_unique<RedisLimitStore>(queue.url, timeout);
  return std::make_unique<SqliteLimitStore>(queue.path + ".limits", timeout);
}

}  // namespace firebreak::egress
