// Spans of one event's path (ingress → enqueue → job attempt → integration call),
// exported as OTLP/HTTP JSON to telemetry.otlp_endpoint (DESIGN §6).
//
// Export is off the request path: Record() encodes the span and appends the bytes to a
// bounded in-memory queue, and a background thread sends batches. When the collector is slow or down, spans are
// dropped and counted (firebreak_trace_spans_dropped_total), never waited for.
// Context travels as W3C traceparent everywhere, whether or not export is on.
#pragma once

#include <array>
#include <chrono>
#include <condition_variable>
#include <cstdint>
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

// A borrowed attribute value: strings are views (see Span::Set).
using AttributeValue = std::variant<std::string_view, int64_t, bool, double>;

// Built on the request path and encoded by Record() before it returns, so it borrows
// what it can: ids are fixed arrays, attribute keys are literals, string values are
// views into the caller's objects, and there is no heap allocation but the name (when
// it is longer than std::string's inline buffer).
struct Span {
  static constexpr size_t kMaxAttributes = 12;  // beyond it, Set() ignores the attribute
  struct Attribute {
    const char* key = nullptr;  // a literal
    AttributeValue value;
  };

  std::array<char, 32> trace_id{};  // hex
  std::array<char, 16> span_id{};
  std::array<char, 16> parent_span_id{};
  bool has_parent = false;  // false: a root span
  std::string name;
  SpanKind kind = SpanKind::kInternal;
  int64_t start_unix_ns = 0;
  int64_t end_unix_ns = 0;
  std::array<Attribute, kMaxAttributes> attributes{};
  size_t attribute_count = 0;
  bool error = false;  // OTLP status ERROR (else UNSET)
  std::string status_message;

  // A span whose own context is `traceparent` (trace and span id) and whose parent is
  // the span of `parent_traceparent` (if it is of the same trace; else a root span).
  static Span For(std::string name, SpanKind kind, std::string_view traceparent,
                  std::string_view parent_traceparent, int64_t start_unix_ns);

  // `key` must be a string literal. A string value is borrowed, not copied: it must
  // outlive Record() (every caller builds and records a span in one scope). A temporary
  // std::string would dangle, so that overload is deleted.
  void Set(const char* key, std::string_view value) { Add(key, value); }
  void Set(const char* key, const char* value) { Add(key, std::string_view(value)); }
  void Set(const char* key, std::string&& value) = delete;
  void Set(const char* key, int64_t value) { Add(key, value); }
  void Set(const char* key, bool value) { Add(key, value); }
  void Set(const char* key, double value) { Add(key, value); }

  std::string_view TraceId() const { return {trace_id.data(), trace_id.size()}; }
  std::string_view SpanId() const { return {span_id.data(), span_id.size()}; }
  std::string_view ParentSpanId() const {
    return has_parent ? std::string_view(parent_span_id.data(), parent_span_id.size())
                      : std::string_view();
  }

 private:
  void Add(const char* key, AttributeValue value) {
    if (attribute_count < kMaxAttributes) attributes[attribute_count++] = {key, value};
  }
};

int64_t NowUnixNs();

struct ExporterOptions {
  std::string endpoint;      // the collector's base URL; "/v1/traces" is appended
  std::string service_name;  // resource attribute service.name
  size_t max_queue = 8192;   // spans waiting for export; beyond it new ones are dropped
  size_t max_queue_bytes = 8 << 20;  // and their encoded size: bounds memory, not just count
  size_t max_batch = 512;    // spans per request
  std::chrono::milliseconds interval{1000};  // a partial batch waits at most this long
  std::chrono::milliseconds timeout{2000};   // per export request
};

// Appends one span as an OTLP JSON Span object.
void AppendSpanJson(std::string& out, const Span& span);
// The OTLP/HTTP JSON body (ExportTraceServiceRequest) for `spans`.
std::string EncodeOtlpJson(const std::vector<Span>& spans, std::string_view service_name);

// Thread-safe. Owns one export thread.
class SpanExporter {
 public:
  SpanExporter(ExporterOptions options, TraceMetrics& metrics);
  ~SpanExporter();
  SpanExporter(const SpanExporter&) = delete;
  SpanExporter& operator=(const SpanExporter&) = delete;

  // Never blocks on I/O: encodes the span on the calling thread (so nothing it borrows
  // is used later, and no span object crosses threads), then appends the bytes under a
  // lock held for a copy, or drops (and counts) the span if the queue is full.
  void Record(const Span& span);
  // Sends what is queued (within about one request timeout) and stops the thread;
  // later Records are dropped. Idempotent.
  void Stop();

 private:
  // Encoded spans back to back, and where each one ends. Two of these trade places (the
  // export thread takes the full one): their buffers are reused, so a steady state
  // allocates nothing.
  struct Encoded {
    std::string json;
    std::vector<size_t> ends;
    void Clear() {
      json.clear();
      ends.clear();
    }
  };

  void Run();
  // One request on `curl` (a CURL*) with spans [first, last) of `spans`; true if the
  // collector answered 2xx.
  bool Export(void* curl, const Encoded& spans, size_t first, size_t last);

  const ExporterOptions options_;
  const std::string url_;
  const std::string body_prefix_;  // the resource and scope, the same in every request
  TraceMetrics& metrics_;
  std::mutex mu_;
  std::condition_variable wake_;
  Encoded queue_;           // guarded by mu_
  bool stopping_ = false;   // guarded by mu_
  std::string body_;                 // export thread only: the request being sent
  int64_t last_failure_log_ns_ = 0;  // export thread only
  int64_t retry_after_ns_ = 0;       // export thread only: no export before this
  std::thread thread_;
};

// The process-wide exporter: started by serve when telemetry.otlp_endpoint is set.
// Callers skip building spans when !Enabled(), so tracing off costs nothing.
void StartExport(ExporterOptions options, TraceMetrics& metrics);
bool Enabled();
void Record(const Span& span);
void StopExport();

}  // namespace firebreak::trace
