#include "telemetry/tracing.h"

#include <curl/curl.h>
#include <unistd.h>

#include <atomic>
#include <charconv>
#include <climits>

#include "common/crypto.h"
#include "common/http_util.h"
#include "common/json_string.h"
#include "telemetry/log.h"

#ifndef FIREBREAK_VERSION
#define FIREBREAK_VERSION "dev"
#endif

namespace firebreak::trace {
namespace {

constexpr int64_t kFailureLogEveryNs = 60'000'000'000;  // one warning a minute at most
constexpr int64_t kExportBackoffNs = 2'000'000'000;     // after a failed export

void AppendInt(std::string& out, int64_t v) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, r.ptr);
}

// Keys are our own literals: plain ASCII, nothing to escape.
void AppendAttribute(std::string& out, std::string_view key, const AttributeValue& value) {
  out.append("{\"key\":\"").append(key).append("\",\"value\":{");
  if (auto* s = std::get_if<std::string_view>(&value)) {
    out.append("\"stringValue\":");
    AppendJsonString(out, *s);
  } else if (auto* i = std::get_if<int64_t>(&value)) {
    out.append("\"intValue\":\"");  // proto3 JSON: int64 as a string
    AppendInt(out, *i);
    out.append("\"");
  } else if (auto* b = std::get_if<bool>(&value)) {
    out.append("\"boolValue\":").append(*b ? "true" : "false");
  } else {
    char buf[32];
    auto r = std::to_chars(buf, buf + sizeof buf, std::get<double>(value));
    out.append("\"doubleValue\":").append(buf, r.ptr);
  }
  out.append("}}");
}

std::string HostName() {
  char buf[HOST_NAME_MAX + 1] = {};
  if (gethostname(buf, sizeof buf - 1) != 0) return "unknown";
  return buf;
}

size_t DiscardBody(char*, size_t size, size_t n, void*) { return size * n; }

std::string TracesUrl(std::string endpoint) {
  const std::string suffix = "/v1/traces";
  if (endpoint.size() >= suffix.size() &&
      endpoint.compare(endpoint.size() - suffix.size(), suffix.size(), suffix) == 0) {
    return endpoint;
  }
  while (!endpoint.empty() && endpoint.back() == '/') endpoint.pop_back();
  return endpoint + suffix;
}

std::atomic<SpanExporter*> g_exporter{nullptr};

}  // namespace

int64_t NowUnixNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

Span Span::For(std::string name, SpanKind kind, std::string_view traceparent,
               std::string_view parent_traceparent, int64_t start_unix_ns) {
  // "00-<32 hex trace>-<16 hex span>-<2 hex flags>"; callers pass valid ones (ours).
  Span span;
  if (traceparent.size() == 55) {
    traceparent.copy(span.trace_id.data(), 32, 3);
    traceparent.copy(span.span_id.data(), 16, 36);
  }
  if (parent_traceparent.size() == 55 &&
      parent_traceparent.substr(3, 32) == std::string_view(span.trace_id.data(), 32)) {
    parent_traceparent.copy(span.parent_span_id.data(), 16, 36);
    span.has_parent = true;
  }
  span.name = std::move(name);
  span.kind = kind;
  span.start_unix_ns = start_unix_ns;
  return span;
}

namespace {

// Everything of an export request before its spans: the resource and the scope.
std::string BodyPrefix(std::string_view service_name) {
  static const std::string host = HostName();
  std::string out = "{\"resourceSpans\":[{\"resource\":{\"attributes\":[";
  AppendAttribute(out, "service.name", service_name);
  out.append(",");
  AppendAttribute(out, "service.version", FIREBREAK_VERSION);
  out.append(",");
  AppendAttribute(out, "host.name", host);
  out.append(",");
  AppendAttribute(out, "process.pid", static_cast<int64_t>(getpid()));
  out.append("]},\"scopeSpans\":[{\"scope\":{\"name\":\"firebreak\",\"version\":");
  AppendJsonString(out, FIREBREAK_VERSION);
  out.append("},\"spans\":[");
  return out;
}

constexpr std::string_view kBodySuffix = "]}]}]}";

// An export request's body from spans already encoded back to back in `json` (span i
// ends at ends[i]): the prefix, spans [first, last) comma-separated, the suffix.
void AssembleBody(std::string& body, std::string_view prefix, std::string_view json,
                  const std::vector<size_t>& ends, size_t first, size_t last) {
  body.assign(prefix);
  for (size_t i = first; i < last; ++i) {
    size_t begin = i == 0 ? 0 : ends[i - 1];
    if (i > first) body.push_back(',');
    body.append(json.substr(begin, ends[i] - begin));
  }
  body.append(kBodySuffix);
}

}  // namespace

void AppendSpanJson(std::string& out, const Span& span) {
  out.append("{\"traceId\":\"").append(span.TraceId());
  out.append("\",\"spanId\":\"").append(span.SpanId()).append("\"");
  if (span.has_parent) {
    out.append(",\"parentSpanId\":\"").append(span.ParentSpanId()).append("\"");
  }
  out.append(",\"name\":");
  AppendJsonString(out, span.name);
  out.append(",\"kind\":");
  AppendInt(out, static_cast<int64_t>(span.kind));
  out.append(",\"startTimeUnixNano\":\"");
  AppendInt(out, span.start_unix_ns);
  out.append("\",\"endTimeUnixNano\":\"");
  AppendInt(out, std::max(span.end_unix_ns, span.start_unix_ns));
  out.append("\",\"attributes\":[");
  for (size_t i = 0; i < span.attribute_count; ++i) {
    if (i > 0) out.append(",");
    AppendAttribute(out, span.attributes[i].key, span.attributes[i].value);
  }
  out.append("]");
  if (span.error) {
    out.append(",\"status\":{\"code\":2,\"message\":");
    AppendJsonString(out, span.status_message);
    out.append("}");
  }
  out.append("}");
}

std::string EncodeOtlpJson(const std::vector<Span>& spans, std::string_view service_name) {
  std::string json;
  std::vector<size_t> ends;
  for (const Span& span : spans) {
    AppendSpanJson(json, span);
    ends.push_back(json.size());
  }
  std::string body;
  AssembleBody(body, BodyPrefix(service_name), json, ends, 0, ends.size());
  return body;
}

SpanExporter::SpanExporter(ExporterOptions options, TraceMetrics& metrics)
    : options_(std::move(options)),
      url_(TracesUrl(options_.endpoint)),
      body_prefix_(BodyPrefix(options_.service_name)),
      metrics_(metrics) {
  curl_global_init(CURL_GLOBAL_DEFAULT);  // reference-counted; thread-safe in curl ≥ 7.84
  thread_ = std::thread([this] { Run(); });
}

SpanExporter::~SpanExporter() { Stop(); }

void SpanExporter::Record(const Span& span) {
  // Encoded here, outside the lock: the thread's own buffer keeps its capacity, so this
  // allocates nothing once warm.
  thread_local std::string encoded;
  encoded.clear();
  AppendSpanJson(encoded, span);
  {
    std::lock_guard lock(mu_);
    if (stopping_) return;  // shutting down: the process is about to exit
    if (queue_.ends.size() < options_.max_queue &&
        queue_.json.size() + encoded.size() <= options_.max_queue_bytes) {
      queue_.json.append(encoded);
      queue_.ends.push_back(queue_.json.size());
      if (queue_.ends.size() == options_.max_batch) wake_.notify_one();
      return;
    }
  }
  metrics_.dropped_queue_full->Increment();
}

void SpanExporter::Stop() {
  {
    std::lock_guard lock(mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  wake_.notify_one();
  if (thread_.joinable()) thread_.join();
}

void SpanExporter::Run() {
  // One handle for the thread's life: the connection to the collector is kept alive.
  CURL* curl = curl_easy_init();
  Encoded taken;
  std::unique_lock lock(mu_);
  bool last_round = false;
  while (!last_round) {
    wake_.wait_for(lock, options_.interval,
                   [this] { return stopping_ || queue_.ends.size() >= options_.max_batch; });
    last_round = stopping_;  // on stop: send what is queued, then end
    taken.Clear();
    std::swap(taken, queue_);  // O(1): Record never waits behind the export's I/O
    lock.unlock();
    for (size_t first = 0; first < taken.ends.size();) {
      // After a failed export, spans are dropped until the backoff is over: a dead
      // collector is not asked again for every batch. (The last round does not wait on
      // a dead collector per batch either.)
      if (NowUnixNs() < retry_after_ns_) {
        metrics_.dropped_export_failed->Increment(
            static_cast<double>(taken.ends.size() - first));
        break;
      }
      size_t last = std::min(taken.ends.size(), first + options_.max_batch);
      bool ok = Export(curl, taken, first, last);
      retry_after_ns_ = ok ? 0 : NowUnixNs() + kExportBackoffNs;
      (ok ? metrics_.exported : metrics_.dropped_export_failed)
          ->Increment(static_cast<double>(last - first));
      first = last;
    }
    lock.lock();
  }
  lock.unlock();
  if (curl != nullptr) curl_easy_cleanup(curl);
}

bool SpanExporter::Export(void* handle, const Encoded& spans, size_t first, size_t last) {
  CURL* curl = static_cast<CURL*>(handle);
  if (curl == nullptr) return false;
  AssembleBody(body_, body_prefix_, spans.json, spans.ends, first, last);
  curl_easy_reset(curl);
  struct curl_slist* headers = curl_slist_append(nullptr, "Content-Type: application/json");
  curl_easy_setopt(curl, CURLOPT_URL, url_.c_str());
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body_.data());
  curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body_.size()));
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, static_cast<long>(options_.timeout.count()));
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS,
                   static_cast<long>(std::min<int64_t>(options_.timeout.count(), 1000)));
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, DiscardBody);
  CURLcode rc = curl_easy_perform(curl);
  long status = 0;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  curl_slist_free_all(headers);
  bool ok = rc == CURLE_OK && status >= 200 && status < 300;
  if (!ok) {
    int64_t now = NowUnixNs();
    if (now - last_failure_log_ns_ >= kFailureLogEveryNs) {
      last_failure_log_ns_ = now;
      std::string why = rc != CURLE_OK ? curl_easy_strerror(rc) : "HTTP " + std::to_string(status);
      log::Warn("trace export failed; spans dropped (logged once a minute)",
                {{"endpoint", RedactUrl(url_)},
                 {"error", why},
                 {"spans", static_cast<int64_t>(last - first)}});
    }
  }
  return ok;
}

void StartExport(ExporterOptions options, TraceMetrics& metrics) {
  if (g_exporter.load() != nullptr) return;
  // Leaked on purpose, like the logger: spans may be recorded until the process exits.
  g_exporter.store(new SpanExporter(std::move(options), metrics));
}

bool Enabled() { return g_exporter.load(std::memory_order_relaxed) != nullptr; }

void Record(const Span& span) {
  if (SpanExporter* exporter = g_exporter.load(std::memory_order_acquire)) {
    exporter->Record(span);
  }
}

void StopExport() {
  if (SpanExporter* exporter = g_exporter.load()) exporter->Stop();
}

}  // namespace firebreak::trace
