#include "telemetry/metrics.h"

#include <prometheus/text_serializer.h>

#include <sstream>

namespace firebreak {
namespace {

// Ingress ACKs are tens of microseconds to a few milliseconds: fine buckets there, so
// p99 of a sub-millisecond ACK is readable.
std::vector<double> AckBuckets() {
  return {0.00005, 0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.0025, 0.005,
          0.01,    0.025,  0.05,    0.1,    0.25,    0.5,   1,      2.5};
}

// Jobs and outbound calls: milliseconds to minutes (handlers have hard timeouts up to
// minutes; integrations retry with backoff of seconds).
std::vector<double> JobBuckets() {
  return {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
          2.5,   5,      10,    20,   30,    60,   120, 300};
}

// Jobs per batch run: batch.max is 1..1000.
std::vector<double> BatchSizeBuckets() { return {1, 2, 5, 10, 20, 50, 100, 200, 500, 1000}; }

}  // namespace

Metrics::Metrics()
    : registry_(std::make_shared<prometheus::Registry>()),
      ingress_requests_(prometheus::BuildCounter()
                            .Name("firebreak_ingress_requests_total")
                            .Help("Webhook requests by source and outcome.")
                            .Register(*registry_)),
      ingress_duration_("firebreak_ingress_request_duration_seconds",
                        "Time from a webhook request's arrival to its answer.", AckBuckets()),
      duplicates_(prometheus::BuildCounter()
                      .Name("firebreak_duplicates_total")
                      .Help("Webhook deliveries dropped as duplicates of a stored job.")
                      .Register(*registry_)),
      queue_depth_(prometheus::BuildGauge()
                       .Name("firebreak_queue_depth")
                       .Help("Jobs in the queue by type and state.")
                       .Register(*registry_)),
      jobs_(prometheus::BuildCounter()
                .Name("firebreak_jobs_total")
                .Help("Job attempts and decisions by type and outcome.")
                .Register(*registry_)),
      job_duration_("firebreak_job_duration_seconds", "Handler time per attempt.", JobBuckets()),
      job_wait_("firebreak_job_wait_seconds",
                "Time from enqueue (or scheduled run) to the attempt's start.", JobBuckets()),
      job_batch_size_("firebreak_job_batch_size", "Jobs per handler run of a batched job type.",
                      BatchSizeBuckets()),
      integration_requests_(prometheus::BuildCounter()
                                .Name("firebreak_integration_requests_total")
                                .Help("Outbound calls to integrations by outcome: each attempt "
                                      "sent upstream, and each call refused before sending.")
                                .Register(*registry_)),
      integration_duration_("firebreak_integration_request_duration_seconds",
                            "Time of each attempt sent to an integration's upstream.",
                            JobBuckets()),
      breaker_state_(prometheus::BuildGauge()
                         .Name("firebreak_circuit_breaker_state")
                         .Help("Circuit breaker of an integration: 0 closed, 1 half-open, 2 open.")
                         .Register(*registry_)),
      shared_limits_degraded_(
          prometheus::BuildGauge()
              .Name("firebreak_integration_shared_limits_degraded")
              .Help("1 while an integration with limits = \"shared\" cannot reach the shared "
                    "store and counts its limits in this process alone.")
              .Register(*registry_)),
      durability_degraded_(
          prometheus::BuildGauge()
              .Name("firebreak_queue_durability_degraded")
              .Help("1 while the queue store's persistence settings cannot give "
                    "queue.durability (see the warning log), else 0.")
              .Register(*registry_)
              .Add({})),
      queue_writable_(prometheus::BuildGauge()
                          .Name("firebreak_queue_writable")
                          .Help("1 while a job enqueued now would be stored (what /readyz "
                                "answers), 0 while the queue store fails or hangs.")
                          .Register(*registry_)
                          .Add({})) {
  queue_writable_.Set(1);
  auto& spans_exported = prometheus::BuildCounter()
                             .Name("firebreak_trace_spans_exported_total")
                             .Help("Spans accepted by the OTLP collector.")
                             .Register(*registry_);
  auto& spans_dropped = prometheus::BuildCounter()
                            .Name("firebreak_trace_spans_dropped_total")
                            .Help("Spans dropped instead of blocking: the export queue was "
                                  "full, or the collector failed or was unreachable.")
                            .Register(*registry_);
  trace_.exported = &spans_exported.Add({});
  trace_.dropped_queue_full = &spans_dropped.Add({{"reason", "queue_full"}});
  trace_.dropped_export_failed = &spans_dropped.Add({{"reason", "export_failed"}});
}

SourceMetrics& Metrics::RegisterSource(const std::string& source) {
  auto [it, inserted] = sources_.try_emplace(source);
  if (!inserted) return it->second;
  SourceMetrics& m = it->second;
  auto outcome = [&](const char* name) {
    return &ingress_requests_.Add({{"source", source}, {"outcome", name}});
  };
  m.accepted = outcome("accepted");
  m.duplicate = outcome("duplicate");
  m.unauthorized = outcome("unauthorized");
  m.bad_request = outcome("bad_request");
  m.too_large = outcome("too_large");
  m.overloaded = outcome("overloaded");
  m.duplicates_total = &duplicates_.Add({{"source", source}});
  m.duration = &ingress_duration_.Add({{"source", source}});
  return m;
}

const SourceMetrics* Metrics::FindSource(const std::string& source) const {
  auto it = sources_.find(source);
  return it == sources_.end() ? nullptr : &it->second;
}

const IntegrationMetrics* Metrics::FindIntegration(const std::string& integration) const {
  auto it = integrations_.find(integration);
  return it == integrations_.end() ? nullptr : &it->second;
}

JobTypeMetrics& Metrics::RegisterJobType(const std::string& job_type) {
  auto [it, inserted] = job_types_.try_emplace(job_type);
  if (!inserted) return it->second;
  JobTypeMetrics& m = it->second;
  auto outcome = [&](const char* name) {
    return &jobs_.Add({{"job_type", job_type}, {"outcome", name}});
  };
  m.succeeded = outcome("succeeded");
  m.retried = outcome("retried");
  m.failed = outcome("failed");
  m.timed_out = outcome("timed_out");
  m.dead_lettered = outcome("dead_lettered");
  m.duration = &job_duration_.Add({{"job_type", job_type}});
  m.wait = &job_wait_.Add({{"job_type", job_type}});
  for (const char* state : {"ready", "delayed", "in_flight", "dead"}) {
    queue_depth_.Add({{"job_type", job_type}, {"state", state}});
  }
  return m;
}

Histogram& Metrics::RegisterBatchSize(const std::string& job_type) {
  return job_batch_size_.Add({{"job_type", job_type}});
}

IntegrationMetrics& Metrics::RegisterIntegration(const std::string& integration) {
  auto [it, inserted] = integrations_.try_emplace(integration);
  if (!inserted) return it->second;
  IntegrationMetrics& m = it->second;
  auto outcome = [&](const char* name) {
    return &integration_requests_.Add({{"integration", integration}, {"outcome", name}});
  };
  m.ok = outcome("ok");
  m.error = outcome("error");
  m.timeout = outcome("timeout");
  m.rejected_open = outcome("rejected_open");
  m.rate_limited = outcome("rate_limited");
  m.rejected_full = outcome("rejected_full");
  m.duration = &integration_duration_.Add({{"integration", integration}});
  m.breaker_state = &breaker_state_.Add({{"integration", integration}});
  m.shared_limits_degraded = &shared_limits_degraded_.Add({{"integration", integration}});
  return m;
}

void Metrics::SetQueueDepth(const std::string& job_type, const std::string& state, double value) {
  queue_depth_.Add({{"job_type", job_type}, {"state", state}}).Set(value);
}

void Metrics::SetDurabilityDegraded(bool degraded) { durability_degraded_.Set(degraded ? 1 : 0); }

void Metrics::SetQueueWritable(bool writable) { queue_writable_.Set(writable ? 1 : 0); }

std::string Metrics::Serialize() const {
  prometheus::TextSerializer serializer;
  std::ostringstream out;
  std::vector<prometheus::MetricFamily> families = registry_->Collect();
  for (const HistogramFamily* h :
       {&ingress_duration_, &job_duration_, &job_wait_, &job_batch_size_, &integration_duration_}) {
    families.push_back(h->Collect());
  }
  serializer.Serialize(out, families);
  return out.str();
}

}  // namespace firebreak
