// Acceptance 2: the real binary verifies, dedupes and stores webhooks, and the
// handler receives the DESIGN §4 envelope.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "harness.h"

namespace firebreak::testing {
namespace {

constexpr char kSlackSecret[] = "slack-signing-secret-for-tests";
constexpr char kHmacSecret[] = "hmac-secret-for-tests";

// Runs on every queue backend (the parameter): one test body, sqlite and redis.
class IngressTest : public ::testing::TestWithParam<std::string> {
 protected:
  // role "ingest" stores without consuming, so stored jobs can be counted.
  void StartFirebreak(const std::string& role, const std::string& handler_dir = "",
                      int max_depth = 100000) {
    backend_ = std::make_unique<QueueBackend>(GetParam(), dir_);
    ASSERT_TRUE(backend_->Start()) << backend_->Describe();
    port_ = FreePort();
    dir_.Write("slack.secret", kSlackSecret);
    dir_.Write("hmac.secret", std::string(kHmacSecret) + "\n");
    std::string handler = handler_dir.empty() ? dir_.File("bot.py") : handler_dir;
    dir_.Write("bot.py", R"PY(
import json, sys, os
out = os.environ.get("OUT", "")
for line in sys.stdin:
    env = json.loads(line)
    with open(sys.argv[1], "a") as f:
        f.write(line.strip() + "\n")
    print(json.dumps({"id": env["id"], "ok": True}), flush=True)
)PY");
    config_ =
        dir_.Write("firebreak.toml", R"(
[server]
listen = "127.0.0.1:)" + std::to_string(port_) +
                                         R"("
max_body = "64KiB"
threads = 2

)" + backend_->QueueToml("max_depth = " + std::to_string(max_depth) + "\n") +
                                         R"(
[worker]
sidecar = "127.0.0.1:0"  # tests run in parallel: any free port

[[sources]]
name = "slack"
kind = "slack"
path = "/hooks/slack"
secret = { file = ")" + dir_.File("slack.secret") +
                                         R"(" }
job = "slack.event"

[[sources]]
name = "github-like"
kind = "hmac"
path = "/hooks/generic"
secret = { file = ")" + dir_.File("hmac.secret") +
                                         R"(" }
header = "X-Hub-Signature-256"
prefix = "sha256="
dedupe = "/delivery"
job = "generic.event"

[[jobs]]
type = "slack.event"
handler = { command = ["/usr/bin/python3", ")" +
                                         handler + R"(", ")" + dir_.File("seen.ndjson") + R"("] }
concurrency = 2
timeout = "5s"

[[jobs]]
type = "generic.event"
handler = { command = ["/usr/bin/python3", ")" +
                                         handler + R"(", ")" + dir_.File("seen.ndjson") + R"("] }
concurrency = 2
timeout = "5s"
)");
    process_ = std::make_unique<FirebreakProcess>(role, config_, dir_.File("log.txt"), port_);
    ASSERT_TRUE(process_->Start()) << process_->Log();
    connection_ = std::make_unique<HttpConnection>("127.0.0.1", port_);
  }

  HttpResponse Post(const std::string& path, const std::string& body,
                    const std::vector<std::pair<std::string, std::string>>& headers) {
    auto res = connection_->Send("POST", path, headers, body);
    EXPECT_TRUE(res.ok()) << res.status().ToString();
    return res.ok() ? *res : HttpResponse{};
  }

  HttpResponse PostSlack(const std::string& body, int64_t ts = NowSeconds(),
                         const std::string& type = "application/json",
                         std::vector<std::pair<std::string, std::string>> extra = {}) {
    auto headers = SlackHeaders(kSlackSecret, body, ts, type);
    headers.insert(headers.end(), extra.begin(), extra.end());
    return Post("/hooks/slack", body, headers);
  }

  // Jobs of a type still in the queue, read through `firebreak queue stats --json`.
  int64_t Stored(const std::string& type) { return QueuedJobs(config_, type); }

  TempDir dir_;
  std::unique_ptr<QueueBackend> backend_;
  uint16_t port_ = 0;
  std::string config_;
  std::unique_ptr<FirebreakProcess> process_;  // declared after the store: stopped first
  std::unique_ptr<HttpConnection> connection_;
};

std::string SlackEvent(const std::string& event_id, const std::string& text = "hi") {
  return R"({"token":"t","team_id":"T1","type":"event_callback","event_id":")" + event_id +
         R"(","event":{"type":"app_mention","text":")" + text + R"(","channel":"C1"}})";
}

TEST_P(IngressTest, SignedSlackAndHmacEventsReachTheHandlerAsEnvelopes) {
  ASSERT_NO_FATAL_FAILURE(StartFirebreak("run"));
  auto res =
      PostSlack(SlackEvent("Ev0001"), NowSeconds(), "application/json",
                {{"traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}});
  EXPECT_EQ(res.status, 200) << res.body;
  std::string body = R"({"delivery":"d-42","action":"opened"})";
  res = Post("/hooks/generic", body,
             {{"X-Hub-Signature-256", "sha256=" + HmacSha256Hex(kHmacSecret, body)},
              {"Content-Type", "application/json"}});
  EXPECT_EQ(res.status, 200) << res.body;

  ASSERT_TRUE(WaitFor([&] { return ReadLines(dir_.File("seen.ndjson")).size() >= 2; },
                      std::chrono::seconds(10)))
      << process_->Log();
  std::map<std::string, nlohmann::json> by_source;
  for (auto& line : ReadLines(dir_.File("seen.ndjson"))) {
    auto env = nlohmann::json::parse(line);
    by_source[env["source"]] = env;
  }
  auto& slack = by_source["slack"];
  EXPECT_EQ(slack["type"], "slack.event");
  EXPECT_EQ(slack["dedupe_key"], "slack:Ev0001");
  EXPECT_EQ(slack["attempt"], 1);
  EXPECT_EQ(slack["max_attempts"], 5);
  EXPECT_EQ(slack["id"].get<std::string>().size(), 26u);
  EXPECT_EQ(slack["enqueued_at"].get<std::string>().back(), 'Z');
  // The attempt's deadline: its start plus the type's timeout (30 s by default).
  EXPECT_GT(slack["deadline"].get<std::string>(), slack["enqueued_at"].get<std::string>());
  EXPECT_EQ(SchemaErrors("envelope", dir_.File("seen.ndjson")), "");
  EXPECT_EQ(slack["traceparent"].get<std::string>().substr(0, 35),
            "00-4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_TRUE(slack["headers"].is_object());
  EXPECT_EQ(slack["payload"]["event"]["text"], "hi");
  auto& generic = by_source["github-like"];
  EXPECT_EQ(generic["type"], "generic.event");
  EXPECT_EQ(generic["dedupe_key"], "github-like:d-42");
  EXPECT_EQ(generic["payload"]["action"], "opened");
  EXPECT_EQ(process_->Terminate(), 0);
}

TEST_P(IngressTest, RejectsForgeriesAndBadInputWithoutStoring) {
  ASSERT_NO_FATAL_FAILURE(StartFirebreak("ingest"));
  std::string body = SlackEvent("Ev0002");
  // Tampered body: signature computed over a different body.
  auto headers = SlackHeaders(kSlackSecret, body, NowSeconds(), "application/json");
  EXPECT_EQ(Post("/hooks/slack", SlackEvent("Ev0002", "tampered"), headers).status, 401);
  // Wrong secret.
  EXPECT_EQ(Post("/hooks/slack", body, SlackHeaders("nope", body, NowSeconds(), "application/json"))
                .status,
            401);
  // Timestamp six minutes old, correctly signed.
  EXPECT_EQ(PostSlack(body, NowSeconds() - 360).status, 401);
  // Missing signature.
  EXPECT_EQ(Post("/hooks/slack", body, {{"Content-Type", "application/json"}}).status, 401);
  // hmac with a bad signature.
  EXPECT_EQ(Post("/hooks/generic", R"({"delivery":"x"})",
                 {{"X-Hub-Signature-256", "sha256=" + std::string(64, '0')}})
                .status,
            401);
  // Malformed JSON, correctly signed → 400.
  auto bad = PostSlack(R"({"type":"event_callback",)");
  EXPECT_EQ(bad.status, 400);
  EXPECT_NE(bad.body.find("\"error\""), std::string::npos);
  // Over max_body (64 KiB) → 413.
  std::string big = SlackEvent("Ev0003", std::string(70 * 1024, 'x'));
  HttpConnection fresh("127.0.0.1", port_);
  auto too_large =
      fresh.Send("POST", "/hooks/slack",
                 SlackHeaders(kSlackSecret, big, NowSeconds(), "application/json"), big);
  ASSERT_TRUE(too_large.ok());
  EXPECT_EQ(too_large->status, 413);

  EXPECT_EQ(Stored("slack.event"), 0);
  EXPECT_EQ(Stored("generic.event"), 0);
}

TEST_P(IngressTest, DuplicatesAndSlackRetriesMakeOneJob) {
  ASSERT_NO_FATAL_FAILURE(StartFirebreak("ingest"));
  std::string body = SlackEvent("Ev0004");
  auto first = PostSlack(body);
  EXPECT_EQ(first.status, 200) << first.body;
  EXPECT_EQ(PostSlack(body).status, 200);
  // Slack's retry of the same event (new timestamp, retry headers) is a duplicate too.
  auto retry = PostSlack(body, NowSeconds(), "application/json",
                         {{"X-Slack-Retry-Num", "1"}, {"X-Slack-Retry-Reason", "http_timeout"}});
  EXPECT_EQ(retry.status, 200);
  EXPECT_EQ(Stored("slack.event"), 1);
  std::string scrape = HttpCall({"GET",
                                 "http://127.0.0.1:" + std::to_string(port_) + "/metrics",
                                 {},
                                 "",
                                 std::chrono::seconds(5)})
                           ->body;
  EXPECT_EQ(MetricValue(scrape, "firebreak_duplicates_total", {"source=\"slack\""}), 2);
  EXPECT_EQ(MetricValue(scrape, "firebreak_ingress_requests_total",
                        {"source=\"slack\"", "outcome=\"accepted\""}),
            1);
}

TEST_P(IngressTest, AnswersUrlVerificationAndAcceptsSlashCommands) {
  ASSERT_NO_FATAL_FAILURE(StartFirebreak("ingest"));
  auto challenge = PostSlack(
      R"({"token":"t","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P","type":"url_verification"})");
  EXPECT_EQ(challenge.status, 200);
  auto parsed = nlohmann::json::parse(challenge.body, nullptr, false);
  EXPECT_EQ(parsed["challenge"], "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P");
  EXPECT_EQ(Stored("slack.event"), 0);

  std::string form =
      "token=gIkuvaNzQIHg97ATvDxqgjtO&team_id=T0001&command=%2Fweather&text=94070"
      "&user_id=U2147483697&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2F1234"
      "&trigger_id=13345224609.738474920.8088930838d88f008e0";
  auto slash = PostSlack(form, NowSeconds(), "application/x-www-form-urlencoded");
  EXPECT_EQ(slash.status, 200) << slash.body;
  EXPECT_EQ(Stored("slack.event"), 1);
}

TEST_P(IngressTest, FullQueueAnswers503WithRetryAfterAndStoresNothing) {
  ASSERT_NO_FATAL_FAILURE(StartFirebreak("ingest", "", /*max_depth=*/2));
  EXPECT_EQ(PostSlack(SlackEvent("EvFull1")).status, 200);
  EXPECT_EQ(PostSlack(SlackEvent("EvFull2")).status, 200);
  auto full = PostSlack(SlackEvent("EvFull3"));
  EXPECT_EQ(full.status, 503) << full.body;
  EXPECT_FALSE(full.Header("Retry-After").empty());
  EXPECT_EQ(Stored("slack.event"), 2);
  // A platform's retry of an already stored event is still a 200 duplicate when full.
  EXPECT_EQ(PostSlack(SlackEvent("EvFull1")).status, 200);
  EXPECT_EQ(Stored("slack.event"), 2);
  EXPECT_EQ(process_->Terminate(), 0);
}

TEST_P(IngressTest, ServesHealthReadinessAndMetrics) {
  ASSERT_NO_FATAL_FAILURE(StartFirebreak("ingest"));
  std::string base = "http://127.0.0.1:" + std::to_string(port_);
  EXPECT_EQ(HttpCall({"GET", base + "/healthz", {}, "", std::chrono::seconds(5)})->status, 200);
  EXPECT_EQ(HttpCall({"GET", base + "/readyz", {}, "", std::chrono::seconds(5)})->status, 200);
  auto metrics = HttpCall({"GET", base + "/metrics", {}, "", std::chrono::seconds(5)});
  ASSERT_TRUE(metrics.ok());
  EXPECT_NE(metrics->body.find("firebreak_ingress_requests_total"), std::string::npos);
  EXPECT_EQ(HttpCall({"GET", base + "/nope", {}, "", std::chrono::seconds(5)})->status, 404);
  EXPECT_EQ(process_->Terminate(), 0);
}

INSTANTIATE_TEST_SUITE_P(Backends, IngressTest, ::testing::ValuesIn(AllBackends()), BackendName);

}  // namespace
}  // namespace firebreak::testing
