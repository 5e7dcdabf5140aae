// Spans of one event's path (ingress → enqueue → job attempt → integration call),
// exported as OTLP/HTTP JSON to telemetry.otlp_endpoint (DESIGN §6).
//
// Export is off the request path: Record() appends to a bounded in-memory queue and a
// background thread sends batches. When the collector is slow or down, spans are
// dropped and counted (firebreak_trace_spans_dropped_total), never waited for.
// Context travels as W3C traceparent everywhere, whether or not export is on.
#pragma once

#include <array>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <variant>
#include <vector>

#include "telemetry/metrics.h"

namespace firebreak::trace {

// OTLP's SpanKind numbers.
enum class SpanKind { kInternal = 1, kServer = 2, kClient = 3, kProducer = 4, kConsumer = 5 };

using AttributeValue = std::variant<std::string, int64_t, bool, double>;

// Built on the request path, so it avoids the heap where it can: ids are fixed arrays,
// attribute keys are string literals, short values fit std::string's inline buffer.
struct Span {
  std::array<char, 32> trace_id{};  // hex
  std::array<char, 16> span_id{};
  std::array<char, 16> parent_span_id{};
  bool has_parent = false;  // false: a root span
  std::string name;
  SpanKind kind = SpanKind::kInternal;
  int64_t start_unix_ns = 0;
  int64_t end_unix_ns = 0;
  std::vector<std::pair<const char*, AttributeValue>> attributes;  // keys: literals
  bool error = false;  // OTLP status ERROR (else UNSET)
  std::string status_message;

  // A span whose own context is `traceparent` (trace and span id) and whose parent is
  // the span of `parent_traceparent` (if it is of the same trace; else a root span).
  static Span For(std::string name, SpanKind kind, std::string_view traceparent,
                  std::string_view parent_traceparent, int64_t start_unix_ns);
  // `key` must be a string literal (it is kept as a pointer).
  void Set(const char* key, AttributeValue value) {
    attributes.emplace_back(key, std::move(value));
  }
  std::string_view TraceId() const { return {trace_id.data(), trace_id.size()}; }
  std::string_view SpanId() const { return {span_id.data(), span_id.size()}; }
  std::string_view ParentSpanId() const {
    return has_parent ? std::string_view(parent_span_id.data(), parent_span_id.size())
                      : std::string_view();
  }
};

int64_t NowUnixNs();

struct ExporterOptions {
  std::string endpoint;      // the collector's base URL; "/v1/traces" is appended
  std::string service_name;  // resource attribute service.name
  size_t max_queue = 8192;   // spans waiting for export; beyond it new ones are dropped
  size_t max_batch = 512;    // spans per request
  std::chrono::milliseconds interval{1000};  // a partial batch waits at most this long
  std::chrono::milliseconds timeout{2000};   // per export request
};

// The OTLP/HTTP JSON body (ExportTraceServiceRequest) for `spans`.
std::string EncodeOtlpJson(const std::vector<Span>& spans, std::string_view service_name);

// Thread-safe. Owns one export thread.
class SpanExporter {
 public:
  SpanExporter(ExporterOptions options, TraceMetrics& metrics);
  ~SpanExporter();
  SpanExporter(const SpanExporter&) = delete;
  SpanExporter& operator=(const SpanExporter&) = delete;

  // Never blocks on I/O: queues the span, or drops (and counts) it if the queue is full.
  void Record(Span span);
  // Sends what is queued (within about one request timeout) and stops the thread;
  // later Records are dropped. Idempotent.
  void Stop();

 private:
  void Run();
  // One request on `curl` (a CURL*); true if the collector answered 2xx.
  bool Export(void* curl, const std::vector<Span>& batch);

  const ExporterOptions options_;
  const std::string url_;
  TraceMetrics& metrics_;
  std::mutex mu_;
  std::condition_variable wake_;
  std::deque<Span> queue_;  // guarded by mu_
  bool stopping_ = false;   // guarded by mu_
  int64_t last_failure_log_ns_ = 0;  // export thread only
  int64_t retry_after_ns_ = 0;       // export thread only: no export before this
  std::thread thread_;
};

// The process-wide exporter: started by serve when telemetry.otlp_endpoint is set.
// Callers skip building spans when !Enabled(), so tracing off costs nothing.
void StartExport(ExporterOptions options, TraceMetrics& metrics);
bool Enabled();
void Record(Span span);
void StopExport();

}  // namespace firebreak::trace
