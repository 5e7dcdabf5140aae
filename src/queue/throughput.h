// The per-minute buckets behind Queue::Throughput, shared by the backends: which
// buckets a window reads and what span they cover. Pure functions of the clock.
#pragma once

#include <algorithm>
#include <cstdint>

#include "queue/queue.h"

namespace firebreak {

inline constexpr int64_t kThroughputBucketMs = 60 * 1000;
// Buckets older than this are pruned (sqlite) or expire (redis). Longer than the
// longest window, so the oldest bucket left also tells when a fresh store began counting.
inline constexpr int64_t kThroughputRetentionMs = 2 * 60 * 60 * 1000;
// The shortest span a rate is divided by: one event in a fresh store must not read as
// a thousand per second.
inline constexpr int64_t kThroughputMinCoveredMs = 1000;

inline int64_t ThroughputMinute(int64_t epoch_ms) {
  // Floor division: a clock before 1970 is a bug, but must not round toward zero.
  return epoch_ms >= 0 ? epoch_ms / kThroughputBucketMs
                       : -((-epoch_ms + kThroughputBucketMs - 1) / kThroughputBucketMs);
}

// The buckets Throughput(window_ms) reads at now_ms: whole minutes that start within
// the window, and always the current one.
struct ThroughputBuckets {
  int64_t first_minute = 0;
  int64_t last_minute = 0;  // the current minute
};

inline ThroughputBuckets ThroughputBucketsAt(int64_t now_ms, int64_t window_ms) {
  window_ms = std::clamp<int64_t>(window_ms, 0, kThroughputMaxWindowMs);
  ThroughputBuckets buckets;
  buckets.last_minute = ThroughputMinute(now_ms);
  // The first minute that starts at or after now - window (a ceiling).
  int64_t first = ThroughputMinute(now_ms - window_ms + kThroughputBucketMs - 1);
  buckets.first_minute = std::min(first, buckets.last_minute);
  return buckets;
}

// The span the buckets cover: from the start of the first one, or from `since_ms` (the
// first event the store still has a bucket for; 0 = unknown) when that is later.
inline int64_t ThroughputCoveredMs(int64_t now_ms, const ThroughputBuckets& buckets,
                                   int64_t since_ms) {
  int64_t start = std::max(buckets.first_minute * kThroughputBucketMs, since_ms);
  return std::max(kThroughputMinCoveredMs, now_ms - start);
}

}  // namespace firebreak
