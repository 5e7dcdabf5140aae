// Process-wide Prometheus metrics (DESIGN §6). Label sets are resolved once, at
// start-up, into plain pointers, so the request path only bumps atomics: counters are
// prometheus-cpp's (an atomic add), histograms our own lock-free ones (histogram.h).
#pragma once

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "telemetry/histogram.h"

namespace firebreak {

struct SourceMetrics {
  prometheus::Counter* accepted = nullptr;
  prometheus::Counter* duplicate = nullptr;
  prometheus::Counter* unauthorized = nullptr;
  prometheus::Counter* bad_request = nullptr;
  prometheus::Counter* too_large = nullptr;
  prometheus::Counter* overloaded = nullptr;
  prometheus::Counter* duplicates_total = nullptr;  // firebreak_duplicates_total{source}
  Histogram* duration = nullptr;
};

struct JobTypeMetrics {
  prometheus::Counter* succeeded = nullptr;
  prometheus::Counter* retried = nullptr;
  prometheus::Counter* failed = nullptr;
  prometheus::Counter* timed_out = nullptr;
  prometheus::Counter* dead_lettered = nullptr;
  Histogram* duration = nullptr;
  Histogram* wait = nullptr;
};

// firebreak_integration_requests_total{integration,outcome} per attempt sent upstream
// (ok, error, timeout, rate_limited for an upstream 429) and per call refused before
// one was sent (rejected_open, rate_limited, rejected_full).
struct IntegrationMetrics {
  prometheus::Counter* ok = nullptr;
  prometheus::Counter* error = nullptr;
  prometheus::Counter* timeout = nullptr;
  prometheus::Counter* rejected_open = nullptr;
  prometheus::Counter* rate_limited = nullptr;
  prometheus::Counter* rejected_full = nullptr;  // the concurrency cap's queue was full
  Histogram* duration = nullptr;     // per attempt sent upstream
  prometheus::Gauge* breaker_state = nullptr;    // 0 closed, 1 half-open, 2 open
  // 1 while limits = "shared" falls back to per-process limits (store unreachable)
  prometheus::Gauge* shared_limits_degraded = nullptr;
};

// Span export (telemetry/tracing.h): spans sent to the collector, and spans dropped
// rather than letting a slow or absent collector block anything.
struct TraceMetrics {
  prometheus::Counter* exported = nullptr;
  prometheus::Counter* dropped_queue_full = nullptr;     // the export queue was full
  prometheus::Counter* dropped_export_failed = nullptr;  // the collector refused or was down
};

// Thread-safe after construction: Register* calls happen before traffic starts.
class Metrics {
 public:
  Metrics();

  SourceMetrics& RegisterSource(const std::string& source);
  JobTypeMetrics& RegisterJobType(const std::string& job_type);
  IntegrationMetrics& RegisterIntegration(const std::string& integration);
  // firebreak_job_batch_size{job_type}: jobs per handler run of a batched type.
  Histogram& RegisterBatchSize(const std::string& job_type);
  // What was registered under that name, for read-outs (the admin API); nullptr when
  // nothing was. Thread-safe with the hot path, not with Register* (start-up only).
  const SourceMetrics* FindSource(const std::string& source) const;
  const IntegrationMetrics* FindIntegration(const std::string& integration) const;
  // Sets firebreak_queue_depth{job_type,state}.
  void SetQueueDepth(const std::string& job_type, const std::string& state, double value);
  // firebreak_queue_durability_degraded: 1 while the store cannot give queue.durability.
  void SetDurabilityDegraded(bool degraded);
  // firebreak_queue_writable: 1 while a job enqueued now would be stored (what /readyz
  // says), 0 while the store is failing or hung.
  void SetQueueWritable(bool writable);
  TraceMetrics& trace() { return trace_; }

  // Prometheus text exposition format 0.0.4.
  std::string Serialize() const;

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>& ingress_requests_;
  HistogramFamily ingress_duration_;
  prometheus::Family<prometheus::Counter>& duplicates_;
  prometheus::Family<prometheus::Gauge>& queue_depth_;
  prometheus::Family<prometheus::Counter>& jobs_;
  HistogramFamily job_duration_;
  HistogramFamily job_wait_;
  HistogramFamily job_batch_size_;
  prometheus::Family<prometheus::Counter>& integration_requests_;
  HistogramFamily integration_duration_;
  prometheus::Family<prometheus::Gauge>& breaker_state_;
  prometheus::Family<prometheus::Gauge>& shared_limits_degraded_;
  prometheus::Gauge& durability_degraded_;
  prometheus::Gauge& queue_writable_;
  TraceMetrics trace_;
  // node-stable containers: pointers handed out stay valid
  std::map<std::string, SourceMetrics> sources_;
  std::map<std::string, JobTypeMetrics> job_types_;
  std::map<std::string, IntegrationMetrics> integrations_;
};

}  // namespace firebreak
