// Lock-free histograms in the Prometheus exposition, and span export: OTLP/HTTP JSON in
// batches to a real local HTTP server, drops counted (never waited for) when the
// collector is down or slow.
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>
#include <vector>

#include "common/crypto.h"
#include "support/process.h"
#include "support/upstream_server.h"
#include "telemetry/histogram.h"
#include "telemetry/log.h"
#include "telemetry/metrics.h"
#include "telemetry/tracing.h"
#include "worker/envelope.h"

namespace firebreak {
namespace {

using std::chrono::milliseconds;
using testing::UpstreamReply;
using testing::UpstreamRequest;
using testing::UpstreamServer;

TEST(HistogramTest, BucketsAreCumulativeAndLessOrEqual) {
  Histogram h({0.001, 0.01, 0.1});
  for (double v : {0.0005, 0.001, 0.002, 0.01, 0.05, 0.5, 7.0}) h.Observe(v);
  auto snap = h.Snapshot();
  ASSERT_EQ(snap.bucket.size(), 4u);
  EXPECT_EQ(snap.bucket[0].cumulative_count, 2u);  // 0.0005, 0.001 (le is inclusive)
  EXPECT_EQ(snap.bucket[1].cumulative_count, 4u);  // + 0.002, 0.01
  EXPECT_EQ(snap.bucket[2].cumulative_count, 5u);  // + 0.05
  EXPECT_EQ(snap.bucket[3].cumulative_count, 7u);  // +Inf
  EXPECT_TRUE(std::isinf(snap.bucket[3].upper_bound));
  EXPECT_EQ(snap.sample_count, 7u);
  EXPECT_NEAR(snap.sample_sum, 7.5635, 1e-9);
}

TEST(HistogramTest, ConcurrentObservesAreAllCounted) {
  Histogram h({0.001, 0.01});
  constexpr int kThreads = 4, kEach = 100'000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&h, t] {
      for (int i = 0; i < kEach; ++i) h.Observe(t % 2 == 0 ? 0.0001 : 0.5);
    });
  }
  for (auto& t : threads) t.join();
  auto snap = h.Snapshot();
  EXPECT_EQ(snap.sample_count, static_cast<uint64_t>(kThreads * kEach));
  EXPECT_EQ(snap.bucket[0].cumulative_count, static_cast<uint64_t>(2 * kEach));
  EXPECT_NEAR(snap.sample_sum, 2 * kEach * 0.0001 + 2 * kEach * 0.5, 1e-3);
}

TEST(MetricsTest, HistogramsAreExposedWithTheirLabelsAndBuckets) {
  Metrics metrics;
  metrics.RegisterSource("slack").duration->Observe(0.0003);
  metrics.RegisterJobType("slack.event").duration->Observe(1.5);
  std::string text = metrics.Serialize();
  EXPECT_NE(text.find("# TYPE firebreak_ingress_request_duration_seconds histogram"),
            std::string::npos);
  EXPECT_NE(text.find("firebreak_ingress_request_duration_seconds_bucket{source=\"slack\","
                      "le=\"0.0005\"} 1"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("firebreak_ingress_request_duration_seconds_bucket{source=\"slack\","
                      "le=\"0.00025\"} 0"),
            std::string::npos);
  EXPECT_NE(text.find("firebreak_job_duration_seconds_count{job_type=\"slack.event\"} 1"),
            std::string::npos);
  EXPECT_NE(text.find("firebreak_job_wait_seconds_bucket{job_type=\"slack.event\",le=\"+Inf\"} 0"),
            std::string::npos);
  EXPECT_NE(text.find("firebreak_trace_spans_dropped_total{reason=\"queue_full\"} 0"),
            std::string::npos);
}

trace::Span MakeSpan(const std::string& name) {
  std::string parent = NewTraceparent();
  std::string self = ChildTraceparent(parent);
  trace::Span span =
      trace::Span::For(name, trace::SpanKind::kServer, self, parent, trace::NowUnixNs());
  span.end_unix_ns = span.start_unix_ns + 1000;
  span.Set("firebreak.source", "slack");
  span.Set("firebreak.attempt", int64_t{2});
  span.Set("firebreak.flag", true);
  return span;
}

TEST(OtlpTest, EncodesAnExportTraceServiceRequest) {
  trace::Span span = MakeSpan("webhook \"slack\"");
  span.error = true;
  span.status_message = "boom";
  trace::Span root = MakeSpan("root");
  root.has_parent = false;
  auto doc = nlohmann::json::parse(trace::EncodeOtlpJson({span, root}, "my-bot"));
  const auto& rs = doc.at("resourceSpans").at(0);
  EXPECT_EQ(rs.at("resource").at("attributes").at(0).at("key"), "service.name");
  EXPECT_EQ(rs.at("resource").at("attributes").at(0).at("value").at("stringValue"), "my-bot");
  const auto& spans = rs.at("scopeSpans").at(0).at("spans");
  ASSERT_EQ(spans.size(), 2u);
  const auto& s = spans.at(0);
  EXPECT_EQ(s.at("traceId"), span.TraceId());
  EXPECT_EQ(s.at("spanId"), span.SpanId());
  EXPECT_EQ(s.at("parentSpanId"), span.ParentSpanId());
  EXPECT_EQ(span.ParentSpanId().size(), 16u);
  EXPECT_EQ(s.at("traceId").get<std::string>().size(), 32u);
  EXPECT_EQ(s.at("spanId").get<std::string>().size(), 16u);
  EXPECT_EQ(s.at("name"), "webhook \"slack\"");
  EXPECT_EQ(s.at("kind"), 2);
  EXPECT_EQ(s.at("startTimeUnixNano"), std::to_string(span.start_unix_ns));
  EXPECT_EQ(s.at("endTimeUnixNano"), std::to_string(span.end_unix_ns));
  EXPECT_EQ(s.at("status").at("code"), 2);
  EXPECT_EQ(s.at("status").at("message"), "boom");
  EXPECT_EQ(s.at("attributes").at(1).at("value").at("intValue"), "2");
  EXPECT_EQ(s.at("attributes").at(2).at("value").at("boolValue"), true);
  EXPECT_FALSE(spans.at(1).contains("parentSpanId"));
  EXPECT_FALSE(spans.at(1).contains("status"));
}

TEST(OtlpTest, AttributesBeyondTheLimitAreLeftOutNotOverrun) {
  trace::Span span = MakeSpan("s");  // 3 attributes
  for (size_t i = 0; i < trace::Span::kMaxAttributes; ++i) span.Set("extra", int64_t{7});
  EXPECT_EQ(span.attribute_count, trace::Span::kMaxAttributes);
  auto doc = nlohmann::json::parse(trace::EncodeOtlpJson({span}, "my-bot"));
  const auto& attributes = doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["attributes"];
  ASSERT_EQ(attributes.size(), trace::Span::kMaxAttributes);
  EXPECT_EQ(attributes.at(0).at("value").at("stringValue"), "slack");
}

size_t SpansIn(const std::vector<UpstreamRequest>& requests) {
  size_t n = 0;
  for (const auto& r : requests) {
    auto doc = nlohmann::json::parse(r.body);
    n += doc["resourceSpans"][0]["scopeSpans"][0]["spans"].size();
  }
  return n;
}

TEST(SpanExporterTest, SendsBatchesToTheCollector) {
  UpstreamServer collector;
  Metrics metrics;
  trace::ExporterOptions options;
  options.endpoint = collector.Url() + "/";
  options.service_name = "firebreak-test";
  options.max_batch = 100;
  options.interval = milliseconds(50);
  {
    trace::SpanExporter exporter(options, metrics.trace());
    for (int i = 0; i < 450; ++i) exporter.Record(MakeSpan("s" + std::to_string(i)));
    exporter.Stop();  // sends what is still queued
  }
  auto requests = collector.Requests();
  ASSERT_GE(requests.size(), 5u);  // 450 spans in batches of at most 100
  for (const auto& r : requests) {
    EXPECT_EQ(r.method, "POST");
    EXPECT_EQ(r.target, "/v1/traces");
    EXPECT_EQ(r.Header("content-type"), "application/json");
    EXPECT_LE(nlohmann::json::parse(r.body)["resourceSpans"][0]["scopeSpans"][0]["spans"].size(),
              100u);
  }
  EXPECT_EQ(SpansIn(requests), 450u);
  EXPECT_EQ(metrics.trace().exported->Value(), 450);
  EXPECT_EQ(metrics.trace().dropped_export_failed->Value(), 0);
}

TEST(SpanExporterTest, ACollectorThatIsDownCostsDroppedSpansNotWaiting) {
  Metrics metrics;
  trace::ExporterOptions options;
  options.endpoint = "http://127.0.0.1:" + std::to_string(testing::PickFreePort());  // closed
  options.max_queue = 1000;
  options.max_batch = 100;
  options.interval = milliseconds(20);
  trace::SpanExporter exporter(options, metrics.trace());
  constexpr int kSpans = 20'000;
  for (int i = 0; i < kSpans; ++i) exporter.Record(MakeSpan("s"));
  exporter.Stop();
  const auto& t = metrics.trace();
  EXPECT_EQ(t.exported->Value(), 0);
  EXPECT_GT(t.dropped_export_failed->Value(), 0);
  // Every span is accounted for: refused by the collector, or (if recording outran the
  // failing exports) dropped at the full queue.
  EXPECT_EQ(t.dropped_export_failed->Value() + t.dropped_queue_full->Value(), kSpans);
}

// The queue is bounded in bytes as well as in spans: big spans (long error messages)
// cannot make it hold more memory than max_queue_bytes.
TEST(SpanExporterTest, TheQueueIsBoundedInBytes) {
  UpstreamServer collector([](const UpstreamRequest&) {
    UpstreamReply reply;
    reply.hang = true;  // the first batch is stuck in flight; the rest has to queue
    return reply;
  });
  Metrics metrics;
  trace::ExporterOptions options;
  options.endpoint = collector.Url();
  options.max_queue = 100000;
  options.max_queue_bytes = 64 * 1024;
  options.max_batch = 1;
  options.interval = milliseconds(20);
  options.timeout = milliseconds(300);
  trace::SpanExporter exporter(options, metrics.trace());
  const std::string long_error(4096, 'x');
  constexpr int kSpans = 200;
  for (int i = 0; i < kSpans; ++i) {
    trace::Span span = MakeSpan("s");
    span.error = true;
    span.status_message = long_error;
    exporter.Record(span);
  }
  // 200 spans of over 4 KiB are over 800 KiB: at most 64 KiB of them (15) wait, plus
  // what the export thread already took.
  EXPECT_GE(metrics.trace().dropped_queue_full->Value(), kSpans - 2 * 16);
  exporter.Stop();
  const auto& t = metrics.trace();
  EXPECT_EQ(t.exported->Value() + t.dropped_export_failed->Value() + t.dropped_queue_full->Value(),
            kSpans);
}

TEST(SpanExporterTest, AHangingCollectorNeverBlocksRecord) {
  UpstreamServer collector([](const UpstreamRequest&) {
    UpstreamReply reply;
    reply.hang = true;
    return reply;
  });
  Metrics metrics;
  trace::ExporterOptions options;
  options.endpoint = collector.Url();
  options.max_queue = 500;
  options.max_batch = 100;
  options.interval = milliseconds(20);
  options.timeout = milliseconds(300);
  trace::SpanExporter exporter(options, metrics.trace());
  for (int i = 0; i < 5000; ++i) exporter.Record(MakeSpan("s"));
  // The exporter is stuck in a request with what it took (at most a queue's worth): the
  // queue filled again and the rest was dropped.
  EXPECT_GE(metrics.trace().dropped_queue_full->Value(), 5000 - 2 * 500);
  auto stop_started = std::chrono::steady_clock::now();
  exporter.Stop();
  // At most the stuck request and one final one, each bounded by the timeout.
  EXPECT_LT(std::chrono::steady_clock::now() - stop_started, milliseconds(3000));
  EXPECT_EQ(metrics.trace().exported->Value(), 0);
}

// stdout is a pipe nobody reads (a stuck terminal, a wedged log shipper): 200,000 lines
// are logged anyway, without waiting; once the pipe drains, the drop is reported.
TEST(LogTest, AStuckStdoutNeverBlocksTheCallerAndDropsAreReported) {
  signal(SIGPIPE, SIG_IGN);  // as firebreak does: the writer may still be mid-write at the end
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  std::fflush(stdout);
  const int saved_stdout = dup(STDOUT_FILENO);
  ASSERT_GE(saved_stdout, 0);
  ASSERT_GE(dup2(fds[1], STDOUT_FILENO), 0);
  log::Init("json", "info");
  for (int i = 0; i < 200'000; ++i) log::Info("filler", {{"i", i}});  // returns: not blocked
  // Now drain the pipe until the writer reports what it had to drop.
  std::string seen;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  bool reported = false;
  char buf[65536];
  while (!reported && std::chrono::steady_clock::now() < deadline) {
    pollfd p{fds[0], POLLIN, 0};
    if (poll(&p, 1, 200) <= 0) continue;
    ssize_t n = read(fds[0], buf, sizeof buf);
    if (n <= 0) break;
    seen.append(buf, static_cast<size_t>(n));
    reported = seen.find("log lines dropped") != std::string::npos;
    if (seen.size() > (1u << 20)) seen.erase(0, seen.size() - 4096);  // keep the tail
  }
  dup2(saved_stdout, STDOUT_FILENO);
  close(saved_stdout);
  close(fds[1]);
  close(fds[0]);
  EXPECT_TRUE(reported);
}

// A full disk fails every commit: hundreds of identical errors a second become one
// line, then one line with the count when the window ends. Another key is not held up.
TEST(LogTest, RepeatedLinesAreCountedNotWritten) {
  char path[] = "/tmp/firebreak-log-XXXXXX";
  const int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  std::fflush(stdout);
  const int saved_stdout = dup(STDOUT_FILENO);
  ASSERT_GE(dup2(fd, STDOUT_FILENO), 0);
  log::Init("json", "info");
  for (int i = 0; i < 400; ++i) {
    log::WriteLimited(log::Level::kWarn, "disk full", "queue write failed",
                      {{"error", "database or disk is full"}, {"i", i}}, milliseconds(300));
  }
  log::WriteLimited(log::Level::kWarn, "other", "another error", {}, milliseconds(300));
  std::this_thread::sleep_for(milliseconds(900));  // the window ends; the writer reports it
  log::Flush();
  std::fflush(stdout);
  dup2(saved_stdout, STDOUT_FILENO);
  close(saved_stdout);
  close(fd);
  std::ifstream in(path);
  std::vector<nlohmann::json> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(nlohmann::json::parse(line));
  std::remove(path);
  std::vector<nlohmann::json> failed;
  for (const auto& line : lines) {
    if (line.at("msg") == "queue write failed") failed.push_back(line);
  }
  ASSERT_EQ(failed.size(), 2u);
  EXPECT_EQ(failed[0].at("i"), 0);
  EXPECT_FALSE(failed[0].contains("repeated"));
  EXPECT_EQ(failed[1].at("repeated"), 399);
  EXPECT_EQ(failed[1].at("i"), 399);  // the last one's fields
  EXPECT_EQ(std::count_if(lines.begin(), lines.end(),
                          [](const auto& l) { return l.at("msg") == "another error"; }),
            1);
}

TEST(EnvelopeTest, CarriesTheAttemptsTraceparentNotThePlatformHeader) {
  Job job;
  job.id = "01J";
  job.type = "t";
  job.traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
  job.headers_json = R"({"traceparent":"00-11111111111111111111111111111111-2222222222222222-01"})";
  job.payload_json = "{}";
  auto envelope = nlohmann::json::parse(BuildEnvelope(job, 1'700'000'010'000));
  EXPECT_EQ(envelope.at("traceparent"), job.traceparent);
  EXPECT_EQ(envelope.at("deadline"), "2023-11-14T22:13:30.000Z");
  EXPECT_EQ(envelope.at("headers").at("traceparent"),
            "00-11111111111111111111111111111111-2222222222222222-01");
}

}  // namespace
}  // namespace firebreak
