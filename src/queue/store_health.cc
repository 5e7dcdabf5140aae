#include "queue/store_health.h"

#include <cstdio>

#include "telemetry/log.h"

namespace firebreak {
namespace {

std::string Seconds(std::chrono::milliseconds d) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1fs", static_cast<double>(d.count()) / 1000.0);
  return buf;
}

}  // namespace

StoreHealth::StoreHealth(std::string store, std::chrono::milliseconds timeout, const Clock& clock)
    : store_(std::move(store)), timeout_(timeout), clock_(clock) {
  published_.since_ms = clock_.NowMs();
  const auto now = SteadyClock::now();
  last_write_ = now;  // just opened: the open itself wrote (or checked) the schema
  last_probe_ = now;
}

void StoreHealth::Wrote() {
  std::lock_guard lock(mu_);
  last_write_ = SteadyClock::now();
  SetLocked(true, "");
}

void StoreHealth::Failed(const Status& status) {
  std::lock_guard lock(mu_);
  SetLocked(false, status.message());
}

bool StoreHealth::TakeProbe() {
  std::lock_guard lock(mu_);
  const auto now = SteadyClock::now();
  const bool due = published_.ready ? now - std::max(last_write_, last_probe_) >= kProbeWhileIdle
                                    : now - last_probe_ >= kProbeWhileFailing;
  if (due) last_probe_ = now;
  return due;
}

QueueHealth StoreHealth::Get(std::chrono::milliseconds stalled) const {
  if (stalled > timeout_) {
    return {false, store_ + " has not answered for " + Seconds(stalled),
            clock_.NowMs() - stalled.count()};
  }
  std::lock_guard lock(mu_);
  return published_;
}

void StoreHealth::SetLocked(bool ready, std::string reason) {
  if (ready == published_.ready && (ready || reason == published_.reason)) return;
  const bool was_ready = published_.ready;
  published_.ready = ready;
  published_.reason = std::move(reason);
  if (ready != was_ready) published_.since_ms = clock_.NowMs();
  // Logged here, once per change; the per-operation failures are rate-limited by callers.
  if (ready) {
    log::Info("queue store writable again", {{"store", store_}});
  } else if (was_ready) {
    log::Warn("queue store cannot take writes: /readyz answers 503 until it can",
              {{"store", store_}, {"error", published_.reason}});
  }
}

}  // namespace firebreak
