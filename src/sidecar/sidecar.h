// The worker's sidecar (DESIGN §5): a loopback HTTP API for handlers in any language.
//
//   ANY  /v1/integrations/<name>/<path>   → the integration's upstream, through its
//                                           policies (egress/); auth injected
//   GET|PUT|DELETE /v1/sessions/<key>[?ttl=30m]   conversation context with a TTL
//   GET|PUT|DELETE /v1/state/<key>                durable bot state
//   GET  /healthz, /metrics
//
// Answers that firebreak itself makes (not the upstream) carry X-Firebreak-Origin:
// firebreak; an open breaker is 503 with X-Firebreak-Breaker: open, at once. Store writes
// take If-Match: "<version>" / If-None-Match: * for compare-and-set (412 when stale).
#pragma once

#include <boost/asio/thread_pool.hpp>
#include <chrono>
#include <memory>
#include <string>

#include "common/clock.h"
#include "common/status.h"
#include "config/config.h"
#include "egress/egress.h"
#include "net/http_server.h"
#include "store/kv_store.h"
#include "telemetry/metrics.h"
#include "telemetry/queue_gauges.h"
#include "worker/running_jobs.h"

namespace firebreak {

// Default and ceiling of a session's ?ttl.
inline constexpr std::chrono::milliseconds kDefaultSessionTtl{60 * 60 * 1000};
inline constexpr std::chrono::milliseconds kMaxSessionTtl{30LL * 24 * 60 * 60 * 1000};

class Sidecar {
 public:
  // Everything passed must outlive the sidecar; `egress` and `queue` may be null
  // (no integrations / no queue gauges on /metrics).
  Sidecar(const Config& config, egress::Egress* egress, KvStore& sessions, KvStore& state,
          Metrics& metrics, RunningJobs& running, Queue* queue);
  ~Sidecar();
  Sidecar(const Sidecar&) = delete;
  Sidecar& operator=(const Sidecar&) = delete;

  // Binds worker.sidecar (port 0: any free port). kUnavailable when it cannot be bound.
  Status Start();
  // "http://127.0.0.1:PORT", what handlers get as FIREBREAK_SIDECAR.
  std::string url() const;
  // Stops accepting, waits up to `grace` for requests being answered, then stops.
  void Stop(std::chrono::milliseconds grace);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace firebreak
