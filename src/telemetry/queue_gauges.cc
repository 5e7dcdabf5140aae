#include "telemetry/queue_gauges.h"

namespace firebreak {

void QueueGauges::Refresh() {
  std::lock_guard lock(mu_);
  const int64_t now = clock_.NowMs();
  if (now - last_refresh_ms_ < 1000) return;
  last_refresh_ms_ = now;
  metrics_.SetDurabilityDegraded(!queue_.DurabilityShortfall().empty());
  auto stats = queue_.Stats();
  if (!stats.ok()) return;
  // Stats lists only types that still have jobs: a type seen before and missing now has
  // drained, and its gauges must say 0 rather than keep the last value.
  std::set<std::string> drained = types_seen_;
  for (const TypeDepth& d : *stats) {
    drained.erase(d.type);
    types_seen_.insert(d.type);
    metrics_.SetQueueDepth(d.type, "ready", static_cast<double>(d.ready));
    metrics_.SetQueueDepth(d.type, "delayed", static_cast<double>(d.delayed));
    metrics_.SetQueueDepth(d.type, "in_flight", static_cast<double>(d.in_flight));
    metrics_.SetQueueDepth(d.type, "dead", static_cast<double>(d.dead));
  }
  for (const std::string& type : drained) {
    for (const char* state : {"ready", "delayed", "in_flight", "dead"}) {
      metrics_.SetQueueDepth(type, state, 0);
    }
  }
}

}  // namespace firebreak
