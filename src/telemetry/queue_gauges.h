// Queue depth and durability gauges come from the queue backend itself (other processes
// change the queue too), read at scrape time and at most once a second however often
// /metrics is scraped (on the ingress and on the sidecar).
#pragma once

#include <mutex>
#include <set>
#include <string>

#include "common/clock.h"
#include "queue/queue.h"
#include "telemetry/metrics.h"

namespace firebreak {

// Thread-safe. `queue`, `metrics` and `clock` must outlive it.
class QueueGauges {
 public:
  QueueGauges(Queue& queue, Metrics& metrics, Clock& clock)
      : queue_(queue), metrics_(metrics), clock_(clock) {}
  // Reads Stats() (blocking) unless it was read less than a second ago.
  void Refresh();

 private:
  Queue& queue_;
  Metrics& metrics_;
  Clock& clock_;
  std::mutex mu_;
  int64_t last_refresh_ms_ = 0;       // guarded by mu_
  std::set<std::string> types_seen_;  // guarded by mu_
};

}  // namespace firebreak
