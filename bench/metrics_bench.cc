// What recording telemetry costs per request, from 1 to 4 threads: a counter increment,
// an observation on our lock-free histogram and, for comparison, on prometheus-cpp's
// (a mutex per observation), and building and queueing one span.
#include <benchmark/benchmark.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/crypto.h"
#include "telemetry/metrics.h"
#include "telemetry/tracing.h"

namespace firebreak {
namespace {

// A loopback port nobody listens on (bound, read, closed).
int ClosedPort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

Metrics& SharedMetrics() {
  static Metrics* metrics = new Metrics();
  return *metrics;
}

void BM_MetricsCounterIncrement(benchmark::State& state) {
  prometheus::Counter* counter = SharedMetrics().RegisterSource("bench").accepted;
  for (auto _ : state) counter->Increment();
}
BENCHMARK(BM_MetricsCounterIncrement)->ThreadRange(1, 4)->UseRealTime();

void BM_MetricsHistogramObserve(benchmark::State& state) {
  Histogram* h = SharedMetrics().RegisterSource("bench").duration;
  double v = 0.00003;
  for (auto _ : state) {
    h->Observe(v);
    v = v < 1 ? v * 1.5 : 0.00003;
  }
}
BENCHMARK(BM_MetricsHistogramObserve)->ThreadRange(1, 4)->UseRealTime();

void BM_MetricsPrometheusCppHistogramObserve(benchmark::State& state) {
  static auto* registry = new prometheus::Registry();
  static auto& family = prometheus::BuildHistogram().Name("bench_seconds").Register(*registry);
  static auto& h = family.Add({}, prometheus::Histogram::BucketBoundaries{
                                      0.00005, 0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.0025,
                                      0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5});
  double v = 0.00003;
  for (auto _ : state) {
    h.Observe(v);
    v = v < 1 ? v * 1.5 : 0.00003;
  }
}
BENCHMARK(BM_MetricsPrometheusCppHistogramObserve)->ThreadRange(1, 4)->UseRealTime();

// A span as the ingress builds it.
trace::Span IngressSpan(const std::string& parent) {
  std::string self = ChildTraceparent(parent);
  trace::Span span = trace::Span::For("webhook slack", trace::SpanKind::kServer, self, parent,
                                      trace::NowUnixNs());
  span.Set("http.request.method", "POST");
  span.Set("http.route", "/hooks/slack");
  span.Set("http.response.status_code", int64_t{200});
  span.Set("firebreak.source", "slack");
  span.end_unix_ns = trace::NowUnixNs();
  return span;
}

// That span recorded into an exporter whose collector is a closed port (so the queue
// drains by failing, as when the collector is down).
void BM_MetricsSpanRecord(benchmark::State& state) {
  static trace::SpanExporter* exporter = [] {
    trace::ExporterOptions options;
    options.endpoint = "http://127.0.0.1:" + std::to_string(ClosedPort());
    return new trace::SpanExporter(options, SharedMetrics().trace());
  }();
  const std::string parent = NewTraceparent();
  for (auto _ : state) {
    exporter->Record(IngressSpan(parent));
  }
}
BENCHMARK(BM_MetricsSpanRecord)->ThreadRange(1, 2)->UseRealTime();

// The same span built and dropped: what the request thread spends on it.
void BM_MetricsSpanBuildOnly(benchmark::State& state) {
  const std::string parent = NewTraceparent();
  for (auto _ : state) {
    trace::Span span = IngressSpan(parent);
    benchmark::DoNotOptimize(span);
  }
}
BENCHMARK(BM_MetricsSpanBuildOnly);

// What the export thread spends encoding a span: a full batch, per span.
void BM_MetricsSpanEncode(benchmark::State& state) {
  const std::string parent = NewTraceparent();
  std::vector<trace::Span> batch;
  for (int i = 0; i < 512; ++i) batch.push_back(IngressSpan(parent));
  for (auto _ : state) benchmark::DoNotOptimize(trace::EncodeOtlpJson(batch, "firebreak"));
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(batch.size()));
}
BENCHMARK(BM_MetricsSpanEncode);

void BM_MetricsChildTraceparent(benchmark::State& state) {
  const std::string parent = NewTraceparent();
  for (auto _ : state) benchmark::DoNotOptimize(ChildTraceparent(parent));
}
BENCHMARK(BM_MetricsChildTraceparent);

}  // namespace
}  // namespace firebreak
