// Observability through the real binary (DESIGN §6): one event followed as one trace
// (ingress → job → integration, exported to a local OTLP/HTTP receiver) and through the
// log by its trace id; a scrape after a mixed run checked by promtool and against the
// metric table of DESIGN §6.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <thread>

#include "harness.h"
#include "support/process.h"
#include "support/upstream_server.h"

namespace firebreak::testing {
namespace {

using std::chrono::milliseconds;

constexpr char kSecret[] = "observability-test-secret";

// mode "ok" answers ok; "fail" fails (retryable); "call" calls the integration named in
// the payload through the sidecar, passing the envelope's traceparent as a bot would.
constexpr char kBot[] = R"PY(
import json, os, sys, urllib.request, urllib.error
sidecar = os.environ["FIREBREAK_SIDECAR"]
for line in sys.stdin:
    env = json.loads(line)
    p = env["payload"]
    if p.get("mode") == "fail":
        print(json.dumps({"id": env["id"], "ok": False, "error": "told to fail", "retry": True}), flush=True)
        continue
    if p.get("mode") == "call":
        req = urllib.request.Request(sidecar + "/v1/integrations/" + p["integration"] + "/v1/chat",
                                     data=b"{}", method="POST",
                                     headers={"traceparent": env["traceparent"],
                                              "X-Firebreak-Job-Id": env["id"],
                                              "Idempotency-Key": env["id"]})
        try:
            urllib.request.urlopen(req, timeout=20).read()
        except urllib.error.HTTPError:
            pass
    print(json.dumps({"id": env["id"], "ok": True}), flush=True)
)PY";

class ObservabilityTest : public ::testing::Test {
 protected:
  void Start(const std::string& extra) {
    port_ = FreePort();
    dir_.Write("secret", kSecret);
    std::string bot = dir_.Write("bot.py", kBot);
    std::string config = R"([server]
listen = "127.0.0.1:)" + std::to_string(port_) + R"("
threads = 1
max_body = "4KiB"
[queue]
path = ")" + dir_.File("q.db") + R"("
[worker]
sidecar = "127.0.0.1:0"
shutdown_grace = "2s"
[[sources]]
name = "bot"
kind = "hmac"
path = "/hooks/bot"
secret = { file = ")" + dir_.File("secret") + R"(" }
dedupe = "/id"
job = "bot.event"
[[jobs]]
type = "bot.event"
handler = { command = ["/usr/bin/python3", ")" + bot + R"("] }
concurrency = 4
timeout = "20s"
max_attempts = 2
backoff = { base = "50ms", max = "100ms" }
)";
    config_ = dir_.Write("firebreak.toml", config + extra);
    process_ = std::make_unique<FirebreakProcess>("run", config_, dir_.File("log.txt"), port_);
    ASSERT_TRUE(process_->Start()) << process_->Log();
  }

  Result<HttpResponse> Post(const std::string& body,
                            std::vector<std::pair<std::string, std::string>> extra = {}) {
    HttpRequest req;
    req.url = "http://127.0.0.1:" + std::to_string(port_) + "/hooks/bot";
    req.body = body;
    req.headers = {{"X-Signature", HmacSha256Hex(kSecret, body)},
                   {"Content-Type", "application/json"}};
    for (auto& h : extra) req.headers.push_back(std::move(h));
    return HttpCall(req);
  }

  // Every JSON line of the log.
  std::vector<nlohmann::json> LogLines() {
    std::vector<nlohmann::json> out;
    for (const std::string& line : ReadLines(dir_.File("log.txt"))) {
      auto j = nlohmann::json::parse(line, nullptr, false);
      if (j.is_object()) out.push_back(std::move(j));
    }
    return out;
  }

  TempDir dir_;
  uint16_t port_ = 0;
  std::string config_;
  std::unique_ptr<FirebreakProcess> process_;
};

struct SpanView {
  std::string trace_id, span_id, parent, name;
  int kind = 0;
  std::map<std::string, std::string> attributes;  // string and int values as text
};

std::vector<SpanView> SpansReceived(const UpstreamServer& collector) {
  std::vector<SpanView> out;
  for (const UpstreamRequest& r : collector.Requests()) {
    if (r.target != "/v1/traces") continue;
    auto doc = nlohmann::json::parse(r.body, nullptr, false);
    if (!doc.is_object()) continue;
    for (const auto& rs : doc["resourceSpans"]) {
      for (const auto& ss : rs["scopeSpans"]) {
        for (const auto& s : ss["spans"]) {
          SpanView v;
          v.trace_id = s.value("traceId", "");
          v.span_id = s.value("spanId", "");
          v.parent = s.value("parentSpanId", "");
          v.name = s.value("name", "");
          v.kind = s.value("kind", 0);
          for (const auto& a : s["attributes"]) {
            const auto& value = a["value"];
            if (value.contains("stringValue")) v.attributes[a["key"]] = value["stringValue"];
            if (value.contains("intValue")) v.attributes[a["key"]] = value["intValue"];
          }
          out.push_back(std::move(v));
        }
      }
    }
  }
  return out;
}

const SpanView* Named(const std::vector<SpanView>& spans, const std::string& prefix) {
  for (const SpanView& s : spans) {
    if (s.name.rfind(prefix, 0) == 0) return &s;
  }
  return nullptr;
}

TEST_F(ObservabilityTest, OneWebhookIsOneTraceFromIngressThroughTheJobToTheIntegration) {
  UpstreamServer collector;  // the OTLP/HTTP receiver
  UpstreamServer api;        // the external API the handler calls
  // Its key goes in the URL's path (as Telegram's does): the span must not show it.
  setenv("FB_TRACE_TEST_PATH_KEY", "s3cret-in-path", 1);
  ASSERT_NO_FATAL_FAILURE(Start("[[integrations]]\nname = \"llm\"\nbase_url = \"" + api.Url() +
                                "\"\nauth = { path = { prefix = \"/key-\", value = { env = "
                                "\"FB_TRACE_TEST_PATH_KEY\" } } }"
                                "\n[telemetry]\nlog_level = \"debug\"\notlp_endpoint = \"" +
                                collector.Url() + "\"\nservice_name = \"trace-test\"\n"));
  const std::string platform_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
  const std::string platform_span = "00f067aa0ba902b7";
  auto res = Post(R"({"id":"e1","mode":"call","integration":"llm"})",
                  {{"traceparent", "00-" + platform_trace + "-" + platform_span + "-01"}});
  ASSERT_TRUE(res.ok() && res->status == 200) << (res.ok() ? res->body : res.status().ToString());
  const std::string job_id = nlohmann::json::parse(res->body)["job"];

  ASSERT_TRUE(WaitFor([&] { return api.requests() >= 1; }, milliseconds(15'000)))
      << process_->Log();
  // Spans leave in batches at least once a second.
  std::vector<SpanView> spans;
  ASSERT_TRUE(WaitFor(
      [&] {
        spans = SpansReceived(collector);
        return Named(spans, "webhook ") && Named(spans, "enqueue ") && Named(spans, "job ") &&
               Named(spans, "POST llm");
      },
      milliseconds(10'000)))
      << spans.size() << " spans; log:\n"
      << process_->Log();
  const SpanView& ingress = *Named(spans, "webhook ");
  const SpanView& enqueue = *Named(spans, "enqueue ");
  const SpanView& job = *Named(spans, "job ");
  const SpanView& call = *Named(spans, "POST llm");
  for (const SpanView* s : {&ingress, &enqueue, &job, &call}) {
    EXPECT_EQ(s->trace_id, platform_trace) << s->name;
    EXPECT_EQ(s->span_id.size(), 16u) << s->name;
  }
  // Parentage: platform → ingress → (enqueue, job) ; job → integration call.
  EXPECT_EQ(ingress.parent, platform_span);
  EXPECT_EQ(ingress.kind, 2);  // SERVER
  EXPECT_EQ(enqueue.parent, ingress.span_id);
  EXPECT_EQ(enqueue.kind, 4);  // PRODUCER
  EXPECT_EQ(job.parent, ingress.span_id);
  EXPECT_EQ(job.kind, 5);  // CONSUMER
  EXPECT_EQ(call.parent, job.span_id);
  EXPECT_EQ(call.kind, 3);  // CLIENT
  EXPECT_EQ(ingress.attributes.at("firebreak.job_id"), job_id);
  EXPECT_EQ(job.attributes.at("firebreak.job_id"), job_id);
  EXPECT_EQ(job.attributes.at("firebreak.outcome"), "succeeded");
  EXPECT_EQ(call.attributes.at("firebreak.integration"), "llm");
  EXPECT_EQ(call.attributes.at("http.response.status_code"), "200");
  EXPECT_EQ(call.attributes.at("url.full"), api.Url() + "/key-REDACTED/v1/chat");
  // The upstream saw the same trace, with the integration call's span as its parent.
  auto seen = api.Requests();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].target, "/key-s3cret-in-path/v1/chat");
  EXPECT_EQ(seen[0].Header("traceparent"), "00-" + platform_trace + "-" + call.span_id + "-01");
  for (const UpstreamRequest& batch : collector.Requests()) {
    EXPECT_EQ(batch.body.find("s3cret-in-path"), std::string::npos) << "no span holds the key";
  }
  EXPECT_EQ(process_->Log().find("s3cret-in-path"), std::string::npos);
  // The resource names the service.
  auto first = nlohmann::json::parse(collector.Requests().at(0).body);
  EXPECT_EQ(first["resourceSpans"][0]["resource"]["attributes"][0]["value"]["stringValue"],
            "trace-test");

  // The log, followed by the trace id alone: ingress, start and completion of the job,
  // the integration call (debug level: the ingress line is per request).
  std::vector<std::string> path;
  for (const nlohmann::json& line : LogLines()) {
    if (line.value("trace_id", "") == platform_trace) path.push_back(line.value("msg", ""));
  }
  auto index = [&](const std::string& msg) {
    auto it = std::find(path.begin(), path.end(), msg);
    return it == path.end() ? -1 : static_cast<int>(it - path.begin());
  };
  // (In `run` the worker may claim the job before the ingress writes its line.)
  EXPECT_GE(index("webhook accepted"), 0) << ::testing::PrintToString(path);
  EXPECT_GE(index("job started"), 0) << ::testing::PrintToString(path);
  EXPECT_GT(index("job succeeded"), index("job started")) << ::testing::PrintToString(path);
  EXPECT_EQ(process_->Terminate(), 0);
}

TEST_F(ObservabilityTest, EveryLogLineAboutAJobCarriesItsJobIdAndTraceId) {
  UpstreamServer api([](const UpstreamRequest&) {
    UpstreamReply reply;
    reply.status = 500;
    return reply;
  });
  ASSERT_NO_FATAL_FAILURE(Start("[[integrations]]\nname = \"llm\"\nbase_url = \"" + api.Url() +
                                "\"\nretry = { attempts = 2, backoff = [\"10ms\"] }\n"
                                "[telemetry]\nlog_level = \"debug\"\n"));
  // Succeeded, retried then dead-lettered, duplicate, failed integration calls.
  for (const char* body : {R"({"id":"a","mode":"ok"})", R"({"id":"b","mode":"fail"})",
                           R"({"id":"a","mode":"ok"})",
                           R"({"id":"c","mode":"call","integration":"llm"})"}) {
    auto res = Post(body);
    ASSERT_TRUE(res.ok() && res->status == 200);
  }
  ASSERT_TRUE(WaitFor(
      [&] {
        std::string log = process_->Log();
        return log.find("\"msg\":\"job dead-lettered\"") != std::string::npos &&
               log.find("\"msg\":\"job succeeded\",\"job_id\"") != std::string::npos &&
               log.find("integration call failed") != std::string::npos;
      },
      milliseconds(15'000)))
      << process_->Log();
  ASSERT_EQ(process_->Terminate(), 0);
  int about_jobs = 0;
  std::set<std::string> messages;
  for (const nlohmann::json& line : LogLines()) {
    if (!line.contains("job_id")) continue;
    ++about_jobs;
    messages.insert(line.value("msg", ""));
    EXPECT_EQ(line.value("trace_id", "").size(), 32u) << line.dump();
  }
  EXPECT_GE(about_jobs, 8);
  for (const char* msg : {"webhook accepted", "duplicate webhook ignored", "job started",
                          "job succeeded", "job failed; retrying", "job dead-lettered"}) {
    EXPECT_TRUE(messages.count(msg)) << msg << " missing; saw " << ::testing::PrintToString(messages);
  }
}


std::vector<std::string> ReadLinesOf(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

bool HasLabeled(const std::vector<std::string>& samples, const std::string& matcher) {
  return std::any_of(samples.begin(), samples.end(),
                     [&](const std::string& s) { return s.find(matcher) != std::string::npos; });
}

// DESIGN §6's metric table: name, Prometheus type, labels, and the values a label takes.
struct DesignMetric {
  std::string name;
  std::string type;
  std::vector<std::string> labels;
  std::map<std::string, std::vector<std::string>> values;
};

const std::vector<DesignMetric>& DesignMetrics() {
  static const std::vector<DesignMetric> kTable = {
      {"firebreak_ingress_requests_total", "counter", {"source", "outcome"},
       {{"outcome",
         {"accepted", "duplicate", "unauthorized", "bad_request", "too_large", "overloaded"}}}},
      {"firebreak_ingress_request_duration_seconds", "histogram", {"source"}, {}},
      {"firebreak_queue_depth", "gauge", {"job_type", "state"},
       {{"state", {"ready", "delayed", "in_flight", "dead"}}}},
      {"firebreak_jobs_total", "counter", {"job_type", "outcome"},
       {{"outcome", {"succeeded", "retried", "failed", "timed_out", "dead_lettered"}}}},
      {"firebreak_job_duration_seconds", "histogram", {"job_type"}, {}},
      {"firebreak_job_wait_seconds", "histogram", {"job_type"}, {}},
      {"firebreak_integration_requests_total", "counter", {"integration", "outcome"},
       {{"outcome", {"ok", "error", "timeout", "rejected_open", "rate_limited"}}}},
      {"firebreak_integration_request_duration_seconds", "histogram", {"integration"}, {}},
      {"firebreak_circuit_breaker_state", "gauge", {"integration"}, {}},
      {"firebreak_duplicates_total", "counter", {"source"}, {}},
  };
  return kTable;
}

// The sample lines of `name` (for a histogram: of name_bucket/_sum/_count).
std::vector<std::string> Samples(const std::string& scrape, const std::string& name) {
  std::vector<std::string> out;
  for (const std::string& line : ReadLinesOf(scrape)) {
    if (line.empty() || line[0] == '#' || line.rfind(name, 0) != 0) continue;
    std::string rest = line.substr(name.size());
    for (const char* suffix : {"", "_bucket", "_sum", "_count"}) {
      std::string s = suffix;
      if (rest.rfind(s, 0) == 0 && rest.size() > s.size() &&
          (rest[s.size()] == '{' || rest[s.size()] == ' ')) {
        out.push_back(line);
        break;
      }
    }
  }
  return out;
}

TEST_F(ObservabilityTest, AScrapeAfterAMixedRunPassesPromtoolAndHasEveryDesignMetric) {
  UpstreamServer api([](const UpstreamRequest&) {
    UpstreamReply reply;
    reply.status = 500;
    return reply;
  });
  ASSERT_NO_FATAL_FAILURE(Start(
      "[[integrations]]\nname = \"llm\"\nbase_url = \"" + api.Url() +
      "\"\nretry = { attempts = 1 }\n"
      "breaker = { failure_rate = 0.5, min_calls = 2, window = \"30s\", open_for = \"60s\" }\n"));
  // accepted, duplicate, unauthorized, bad_request, too_large
  for (const char* body : {R"({"id":"ok1","mode":"ok"})", R"({"id":"ok2","mode":"ok"})",
                           R"({"id":"ok1","mode":"ok"})", R"({"id":"f1","mode":"fail"})"}) {
    auto res = Post(body);
    ASSERT_TRUE(res.ok() && res->status == 200);
  }
  HttpRequest forged;
  forged.url = "http://127.0.0.1:" + std::to_string(port_) + "/hooks/bot";
  forged.body = R"({"id":"x"})";
  forged.headers = {{"X-Signature", "00"}, {"Content-Type", "application/json"}};
  auto unauthorized = HttpCall(forged);
  ASSERT_TRUE(unauthorized.ok());
  EXPECT_EQ(unauthorized->status, 401);
  auto malformed = Post("{not json");
  ASSERT_TRUE(malformed.ok());
  EXPECT_EQ(malformed->status, 400);
  auto large = Post(R"({"id":"big","pad":")" + std::string(8000, 'x') + "\"}");
  ASSERT_TRUE(large.ok());
  EXPECT_EQ(large->status, 413);
  // Integration errors until the breaker opens, then a call it rejects.
  for (int i = 0; i < 3; ++i) {
    auto res = Post(R"({"id":"c)" + std::to_string(i) + R"(","mode":"call","integration":"llm"})");
    ASSERT_TRUE(res.ok() && res->status == 200);
    const double want = i + 1;
    ASSERT_TRUE(WaitFor(
        [&] {
          return MetricValue(ScrapeMetrics(port_), "firebreak_jobs_total",
                             {"outcome=\"succeeded\""}) >= 2 + want;
        },
        milliseconds(15'000)))
        << process_->Log();
  }
  ASSERT_TRUE(WaitFor(
      [&] {
        return MetricValue(ScrapeMetrics(port_), "firebreak_jobs_total",
                           {"outcome=\"dead_lettered\""}) >= 1;
      },
      milliseconds(15'000)))
      << process_->Log();
  std::this_thread::sleep_for(milliseconds(1100));  // queue gauges refresh once a second
  const std::string scrape = ScrapeMetrics(port_);
  ASSERT_FALSE(scrape.empty());
  std::string scrape_file = dir_.Write("scrape.prom", scrape);

  // promtool's own linter (Debian's prometheus package).
  std::string promtool_out = dir_.File("promtool.txt");
  int rc = RunToCompletion({"/bin/sh", "-c", "promtool check metrics < " + scrape_file},
                           promtool_out, "", milliseconds(30'000));
  EXPECT_EQ(rc, 0) << ReadFile(promtool_out) << "\n" << scrape;

  // Every metric, label and label value the dashboard and the alert rules use is in it.
  std::string assets_out = dir_.File("assets.txt");
  rc = RunToCompletion({"python3", SourceDir() + "/scripts/check-deploy-assets.py", "--dashboard",
                        SourceDir() + "/deploy/grafana/dashboard.json", "--rules",
                        SourceDir() + "/deploy/prometheus/alerts.yml", "--scrape", scrape_file},
                       assets_out, "", milliseconds(30'000));
  EXPECT_EQ(rc, 0) << ReadFile(assets_out);

  for (const DesignMetric& m : DesignMetrics()) {
    EXPECT_NE(scrape.find("# TYPE " + m.name + " " + m.type + "\n"), std::string::npos)
        << m.name << " is not a " << m.type;
    std::vector<std::string> samples = Samples(scrape, m.name);
    ASSERT_FALSE(samples.empty()) << m.name;
    for (const std::string& label : m.labels) {
      bool everywhere = std::all_of(samples.begin(), samples.end(), [&](const std::string& s) {
        return s.find(label + "=\"") != std::string::npos;
      });
      EXPECT_TRUE(everywhere) << m.name << " lacks label " << label;
    }
    for (const auto& [label, values] : m.values) {
      for (const std::string& value : values) {
        EXPECT_TRUE(HasLabeled(samples, label + "=\"" + value + "\""))
            << m.name << "{" << label << "=\"" << value << "\"} missing";
      }
    }
  }
  // The mixed run shows up in them.
  auto value = [&](const std::string& name, std::vector<std::string> labels) {
    return MetricValue(scrape, name, labels);
  };
  EXPECT_GE(value("firebreak_ingress_requests_total", {"outcome=\"accepted\""}), 6);
  EXPECT_EQ(value("firebreak_ingress_requests_total", {"outcome=\"duplicate\""}), 1);
  EXPECT_EQ(value("firebreak_ingress_requests_total", {"outcome=\"unauthorized\""}), 1);
  EXPECT_EQ(value("firebreak_ingress_requests_total", {"outcome=\"bad_request\""}), 1);
  EXPECT_EQ(value("firebreak_ingress_requests_total", {"outcome=\"too_large\""}), 1);
  EXPECT_EQ(value("firebreak_duplicates_total", {"source=\"bot\""}), 1);
  EXPECT_GE(value("firebreak_jobs_total", {"outcome=\"retried\""}), 1);
  EXPECT_EQ(value("firebreak_jobs_total", {"outcome=\"dead_lettered\""}), 1);
  EXPECT_EQ(value("firebreak_integration_requests_total", {"outcome=\"error\""}), 2);
  EXPECT_EQ(value("firebreak_integration_requests_total", {"outcome=\"rejected_open\""}), 1);
  EXPECT_EQ(value("firebreak_circuit_breaker_state", {"integration=\"llm\""}), 2);
  EXPECT_EQ(value("firebreak_queue_depth", {"job_type=\"bot.event\"", "state=\"dead\""}), 1);
  EXPECT_GE(value("firebreak_ingress_request_duration_seconds_count", {"source=\"bot\""}), 9);
  EXPECT_GE(value("firebreak_job_wait_seconds_count", {"job_type=\"bot.event\""}), 6);
  EXPECT_EQ(process_->Terminate(), 0);
}

}  // namespace
}  // namespace firebreak::testing
