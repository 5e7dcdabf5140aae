// The admin API (admin/admin_api.h) over a real SQLite queue: bearer tokens and their
// scopes before any routing, the failed-auth limit, 404/405, the queues, capacity,
// sources, integrations and overview read-outs, its own listener, and that no answer
// ever carries a secret.
#include "admin/admin_api.h"

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <future>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>

#include "admin/auth_limiter.h"
#include "admin/console.h"
#include "admin/recent_window.h"
#include "cli/http_client.h"
#include "common/clock.h"
#include "common/crypto.h"
#include "config/config.h"
#include "egress/egress.h"
#include "queue/queue.h"
#include "telemetry/metrics.h"
#include "queue_test_util.h"

namespace firebreak {
namespace {

namespace asio = boost::asio;
namespace http = boost::beast::http;
using queue_test::JobId;
using queue_test::MakeJob;
using queue_test::TempDir;

constexpr char kToken[] = "s3cret-admin-token";
constexpr char kReadToken[] = "viewer-token-4f1c";
constexpr char kOperateToken[] = "ops-token-9b2e";
constexpr char kSourceSecret[] = "gh-webhook-secret-77";
constexpr char kPreviousSecret[] = "gh-old-secret-12";
constexpr char kIntegrationSecret[] = "xoxb-integration-credential";
constexpr char kPeer[] = "198.51.100.7";

// The text between the first `open` in `text` and the next `close` after it; "" if none.
std::string Between(const std::string& text, const std::string& open, const std::string& close) {
  const size_t start = text.find(open);
  if (start == std::string::npos) return "";
  const size_t from = start + open.size();
  const size_t end = text.find(close, from);
  return text.substr(from, end == std::string::npos ? std::string::npos : end - from);
}

asio::awaitable<void> HandleInto(AdminApi& api, net::Request& req,
                                 std::optional<net::Response>& out) {
  auto pending = api.Handle(req);
  out = co_await std::move(pending);
}

class AdminApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Result<Config> config = ParseConfig(R"(
[[jobs]]
type = "slack.event"
handler = { command = ["true"] }
concurrency = 4

[[jobs]]
type = "quiet"
handler = { command = ["true"] }
concurrency = 2

[[sources]]
name = "gh"
kind = "github"
path = "/hooks/gh"
secret = { env = "GH_SECRET" }
job = "slack.event"

[[sources]]
name = "rotating"
kind = "hmac"
path = "/hooks/rotating"
secret = { env = "NEW_SECRET" }
previous_secret = { env = "OLD_SECRET" }
job = "quiet"

[[integrations]]
name = "api"
base_url = "http://127.0.0.1:9"
max_concurrency = 7
auth = { bearer = { env = "API_TOKEN" } }
rate_limit = { rate = "5/s", burst = 3 }
)",
                                        "admin.toml");
    ASSERT_TRUE(config.ok()) << config.status().ToString();
    config_ = std::move(config).value();
    config_.queue.path = dir_.path() + "/queue.db";
    config_.queue.durability = Durability::kProcess;
    Result<std::unique_ptr<Queue>> queue = OpenQueue(config_.queue, clock_);
    ASSERT_TRUE(queue.ok()) << queue.status().ToString();
    queue_ = std::move(queue).value();
    // What ResolveSecrets would have read.
    config_.sources[0].secret->value = kSourceSecret;
    config_.sources[1].secret->value = kSourceSecret + std::string("-new");
    config_.sources[1].previous_secret->value = kPreviousSecret;
    config_.integrations[0].auth->secret.value = kIntegrationSecret;
    for (const SourceConfig& source : config_.sources) metrics_.RegisterSource(source.name);
    MakeApi(nullptr);
  }

  static std::vector<AdminToken> Tokens() {
    return {{"admin", kToken, AdminScope::kAdmin},
            {"viewer", kReadToken, AdminScope::kRead},
            {"ops", kOperateToken, AdminScope::kOperate}};
  }

  void MakeApi(egress::Egress* egress) {
    api_.reset();
    AdminApiParts parts;
    parts.metrics = &metrics_;
    parts.egress = egress;
    parts.clock = &clock_;
    api_ = std::make_unique<AdminApi>(config_, *queue_, Tokens(), parts);
  }

  net::Response Call(const std::string& target, const std::string& token = kToken,
                     http::verb method = http::verb::get, const std::string& peer = kPeer) {
    net::Request req{method, target, 11};
    req.peer = peer;
    if (!token.empty()) req.set(http::field::authorization, "Bearer " + token);
    return Run(req);
  }

  net::Response Run(net::Request& req) {
    asio::io_context io;
    std::optional<net::Response> out;
    asio::co_spawn(io, HandleInto(*api_, req, out), asio::detached);
    io.run();
    EXPECT_TRUE(out.has_value()) << "no answer";
    return out ? *out : net::Response{};
  }

  nlohmann::json Json(const net::Response& res) {
    nlohmann::json json = nlohmann::json::parse(res.body(), nullptr, false);
    EXPECT_FALSE(json.is_discarded()) << res.body();
    return json;
  }

  void Enqueue(const NewJob& job) {
    std::promise<EnqueueResult> done;
    queue_->Enqueue(job, [&](EnqueueResult r) { done.set_value(std::move(r)); });
    EnqueueResult result = done.get_future().get();
    ASSERT_TRUE(result.status.ok() && result.outcome == EnqueueOutcome::kAccepted);
  }

  TempDir dir_;
  FakeClock clock_;
  Metrics metrics_;
  Config config_;
  std::unique_ptr<Queue> queue_;
  std::unique_ptr<AdminApi> api_;
};

TEST_F(AdminApiTest, EveryAdminPathNeedsTheBearerToken) {
  int peer = 0;  // one client each: the failed-auth limit is not under test here
  for (const std::string target :
       {"/admin/api/v1/capacity", "/admin/api/v1/queues", "/admin/api/v1/nope", "/admin/nope"}) {
    for (const std::string& token : {std::string(), std::string("wrong"), std::string(kToken) + "x",
                                     std::string(kToken).substr(1)}) {
      net::Response res =
          Call(target, token, http::verb::get, "192.0.2." + std::to_string(++peer));
      EXPECT_EQ(res.result(), http::status::unauthorized) << target << " with \"" << token << "\"";
      EXPECT_EQ(Json(res)["ok"], false);
      EXPECT_EQ(res[http::field::www_authenticate], "Bearer realm=\"firebreak admin\"");
      EXPECT_EQ(res.body().find(kToken), std::string::npos);
    }
  }
  // Another scheme, or the token without one, is not the bearer token.
  net::Request basic{http::verb::get, "/admin/api/v1/queues", 11};
  basic.set(http::field::authorization, std::string("Basic ") + kToken);
  EXPECT_EQ(Run(basic).result(), http::status::unauthorized);
  net::Request bare{http::verb::get, "/admin/api/v1/queues", 11};
  bare.set(http::field::authorization, kToken);
  EXPECT_EQ(Run(bare).result(), http::status::unauthorized);
  // The scheme is case-insensitive.
  net::Request lower{http::verb::get, "/admin/api/v1/queues", 11};
  lower.set(http::field::authorization, std::string("bearer ") + kToken);
  EXPECT_EQ(Run(lower).result(), http::status::ok);

  // An API built without a token refuses even an empty bearer.
  AdminApi off(config_, *queue_, {});
  net::Request empty{http::verb::get, "/admin/api/v1/queues", 11};
  empty.set(http::field::authorization, "Bearer ");
  std::optional<net::Response> out;
  asio::io_context io;
  asio::co_spawn(io, HandleInto(off, empty, out), asio::detached);
  io.run();
  ASSERT_TRUE(out.has_value());
  EXPECT_EQ(out->result(), http::status::unauthorized);
}

TEST_F(AdminApiTest, UnknownPathsAre404AndOtherMethods405) {
  net::Response missing = Call("/admin/api/v1/nope");
  EXPECT_EQ(missing.result(), http::status::not_found);
  EXPECT_EQ(Json(missing)["ok"], false);
  EXPECT_EQ(Call("/admin/nope").result(), http::status::not_found);
  EXPECT_EQ(Call("/admin/api/v1/capacity/x").result(), http::status::not_found);
  for (http::verb method : {http::verb::post, http::verb::delete_, http::verb::put}) {
    net::Response res = Call("/admin/api/v1/capacity", kToken, method);
    EXPECT_EQ(res.result(), http::status::method_not_allowed);
    EXPECT_EQ(res[http::field::allow], "GET");
  }
  EXPECT_EQ(Call("/admin/api/v1/queues?limit=0").result(), http::status::bad_request);
  EXPECT_EQ(Call("/admin/api/v1/queues?limit=x").result(), http::status::bad_request);
  EXPECT_TRUE(AdminApi::IsAdminPath("/admin"));
  EXPECT_TRUE(AdminApi::IsAdminPath("/admin/api/v1/queues?limit=1"));
  EXPECT_FALSE(AdminApi::IsAdminPath("/administrator"));
  EXPECT_FALSE(AdminApi::IsAdminPath("/hooks/admin"));
}

TEST_F(AdminApiTest, QueuesListsDepthPerTypeAndStateWithPages) {
  for (int i = 0; i < 3; ++i) Enqueue(MakeJob(JobId(i), "slack.event"));
  Enqueue(MakeJob(JobId(10), "removed.type"));
  net::Response res = Call("/admin/api/v1/queues");
  ASSERT_EQ(res.result(), http::status::ok) << res.body();
  EXPECT_EQ(res[http::field::content_type], "application/json");
  EXPECT_EQ(res[http::field::cache_control], "no-store");
  nlohmann::json body = Json(res);
  EXPECT_EQ(body["total_estimate"], 4);  // action:api, quiet, removed.type, slack.event
  EXPECT_TRUE(body["next_cursor"].is_null());
  ASSERT_EQ(body["items"].size(), 4u);
  EXPECT_EQ(body["items"][0]["job_type"], "action:api");
  EXPECT_EQ(body["items"][0]["ready"], 0);
  EXPECT_EQ(body["items"][2]["job_type"], "removed.type");
  EXPECT_EQ(body["items"][3]["job_type"], "slack.event");
  EXPECT_EQ(body["items"][3]["ready"], 3);
  EXPECT_EQ(body["items"][3]["delayed"], 0);
  EXPECT_EQ(body["items"][3]["in_flight"], 0);
  EXPECT_EQ(body["items"][3]["dead"], 0);

  nlohmann::json first = Json(Call("/admin/api/v1/queues?limit=3"));
  ASSERT_EQ(first["items"].size(), 3u);
  EXPECT_EQ(first["next_cursor"], "removed.type");
  nlohmann::json second = Json(Call("/admin/api/v1/queues?limit=3&cursor=removed.type"));
  ASSERT_EQ(second["items"].size(), 1u);
  EXPECT_EQ(second["items"][0]["job_type"], "slack.event");
  EXPECT_TRUE(second["next_cursor"].is_null());
}

TEST_F(AdminApiTest, CapacityAppliesLittlesLawToTheQueuesCounts) {
  // 12 jobs in 60 s, 10 finished at 250 ms each: λ = 0.2/s, W = 0.25 s, L = 0.05.
  for (int i = 0; i < 12; ++i) Enqueue(MakeJob(JobId(i), "slack.event"));
  clock_.Advance(std::chrono::seconds(60));
  std::promise<Result<std::vector<Job>>> claimed;
  queue_->Claim({{"slack.event", 10, 30'000}},
                [&](Result<std::vector<Job>> r) { claimed.set_value(std::move(r)); });
  Result<std::vector<Job>> jobs = claimed.get_future().get();
  ASSERT_TRUE(jobs.ok());
  ASSERT_EQ(jobs->size(), 10u);
  for (const Job& job : *jobs) {
    JobFinish finish;
    finish.job_id = job.id;
    finish.attempt = job.attempt;
    finish.record.duration_ms = 250;
    std::promise<Status> done;
    queue_->Finish(finish, [&](Status s) { done.set_value(std::move(s)); });
    ASSERT_TRUE(done.get_future().get().ok());
  }

  net::Response res = Call("/admin/api/v1/capacity");
  ASSERT_EQ(res.result(), http::status::ok) << res.body();
  nlohmann::json body = Json(res);
  ASSERT_EQ(body["items"].size(), 3u) << body.dump();  // action:api, quiet, slack.event
  EXPECT_EQ(body["total_estimate"], 3);
  const nlohmann::json& slack = body["items"][2];
  EXPECT_EQ(slack["job_type"], "slack.event");
  EXPECT_DOUBLE_EQ(slack["window_seconds"].get<double>(), 60);
  EXPECT_DOUBLE_EQ(slack["arrival_rate_per_s"].get<double>(), 0.2);
  EXPECT_DOUBLE_EQ(slack["mean_job_seconds"].get<double>(), 0.25);
  EXPECT_DOUBLE_EQ(slack["concurrency_needed"].get<double>(), 0.05);
  EXPECT_EQ(slack["concurrency_configured"], 4);
  EXPECT_DOUBLE_EQ(slack["utilization"].get<double>(), 0.0125);
  EXPECT_EQ(slack["ready"], 2);
  EXPECT_EQ(slack["in_flight"], 0);
  EXPECT_EQ(slack["arrived"], 12);
  EXPECT_EQ(slack["finished"], 10);
  EXPECT_TRUE(slack["hints"].is_array());
  const nlohmann::json& actions = body["items"][0];
  EXPECT_EQ(actions["job_type"], "action:api");
  EXPECT_EQ(actions["concurrency_configured"], 7);
  EXPECT_TRUE(actions["mean_job_seconds"].is_null());
  EXPECT_DOUBLE_EQ(actions["arrival_rate_per_s"].get<double>(), 0);
}

TEST_F(AdminApiTest, ClosedQueueIs503) {
  queue_->Close();
  net::Response res = Call("/admin/api/v1/capacity");
  EXPECT_EQ(res.result(), http::status::service_unavailable);
  EXPECT_EQ(res[http::field::retry_after], "5");
  EXPECT_EQ(Json(res)["ok"], false);
}

TEST_F(AdminApiTest, OwnListenerServesOnlyAdminPaths) {
  ASSERT_TRUE(api_->Listen("127.0.0.1:0", std::chrono::seconds(5)).ok());
  ASSERT_NE(api_->port(), 0);
  const std::string base = "http://127.0.0.1:" + std::to_string(api_->port());
  Result<HttpResponse> ok = HttpCall({"GET",
                                      base + "/admin/api/v1/queues",
                                      {{"Authorization", std::string("Bearer ") + kToken}},
                                      "",
                                      std::chrono::seconds(5)});
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ(ok->status, 200) << ok->body;
  Result<HttpResponse> refused =
      HttpCall({"GET", base + "/admin/api/v1/queues", {}, "", std::chrono::seconds(5)});
  ASSERT_TRUE(refused.ok());
  EXPECT_EQ(refused->status, 401);
  Result<HttpResponse> other =
      HttpCall({"GET", base + "/healthz", {}, "", std::chrono::seconds(5)});
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(other->status, 404);
  api_->Stop();
  api_->Stop();  // idempotent
  EXPECT_EQ(api_->port(), 0);
  // The port is closed: the connection is refused (rather than left waiting).
  Result<HttpResponse> after = HttpCall({"GET", base + "/admin", {}, "", std::chrono::seconds(2)});
  EXPECT_EQ(after.status().code(), StatusCode::kUnavailable) << after.status().ToString();
}

TEST_F(AdminApiTest, ScopesDecideWhatATokenMayDo) {
  // Read: every GET; POST and DELETE are refused before routing, with the token's name.
  // 403 names the scope needed and the token's name and scope.
  auto expect_forbidden = [this](const char* target, const char* token, http::verb method,
                                 const std::string& error) {
    net::Response res = Call(target, token, method);
    EXPECT_EQ(res.result(), http::status::forbidden) << target;
    EXPECT_EQ(Json(res)["error"], error) << target;
  };
  EXPECT_EQ(Call("/admin/api/v1/queues", kReadToken).result(), http::status::ok);
  expect_forbidden("/admin/api/v1/dead/01J/replay", kReadToken, http::verb::post,
                   "this needs scope \"operate\"; token \"viewer\" has \"read\"");
  expect_forbidden("/admin/api/v1/dead/01J", kReadToken, http::verb::delete_,
                   "this needs scope \"admin\"; token \"viewer\" has \"read\"");
  // Operate: POST passes the gate (no such endpoint yet: 404), DELETE and purges do not.
  EXPECT_EQ(Call("/admin/api/v1/dead/01J/replay", kOperateToken, http::verb::post).result(),
            http::status::not_found);
  EXPECT_EQ(Call("/admin/api/v1/queues", kOperateToken, http::verb::post).result(),
            http::status::method_not_allowed);
  expect_forbidden("/admin/api/v1/dead/01J", kOperateToken, http::verb::delete_,
                   "this needs scope \"admin\"; token \"ops\" has \"operate\"");
  expect_forbidden("/admin/api/v1/dead/purge", kOperateToken, http::verb::post,
                   "this needs scope \"admin\"; token \"ops\" has \"operate\"");
  // Admin: everything passes the gate.
  EXPECT_EQ(Call("/admin/api/v1/dead/01J", kToken, http::verb::delete_).result(),
            http::status::not_found);

  EXPECT_EQ(RequiredScope(http::verb::get, "/admin/api/v1/jobs/1"), AdminScope::kRead);
  EXPECT_EQ(RequiredScope(http::verb::head, "/admin/api/v1/queues"), AdminScope::kRead);
  EXPECT_EQ(RequiredScope(http::verb::post, "/admin/api/v1/jobs/1/cancel"), AdminScope::kOperate);
  EXPECT_EQ(RequiredScope(http::verb::post, "/admin/api/v1/queues/x/pause?y=1"),
            AdminScope::kOperate);
  EXPECT_EQ(RequiredScope(http::verb::post, "/admin/api/v1/dead/purge?type=x"),
            AdminScope::kAdmin);
  EXPECT_EQ(RequiredScope(http::verb::delete_, "/admin/api/v1/dead/1"), AdminScope::kAdmin);
  EXPECT_EQ(RequiredScope(http::verb::options, "/admin/api/v1/queues"), AdminScope::kAdmin);
}

TEST_F(AdminApiTest, ElevenFailuresInAMinuteRefuseTheClientForTheRestOfIt) {
  for (int i = 1; i <= 10; ++i) {
    EXPECT_EQ(Call("/admin/api/v1/queues", "guess-" + std::to_string(i)).result(),
              http::status::unauthorized)
        << i;
  }
  clock_.Advance(std::chrono::seconds(15));
  net::Response eleventh = Call("/admin/api/v1/queues", "guess-11");
  EXPECT_EQ(eleventh.result(), http::status::too_many_requests);
  EXPECT_EQ(eleventh[http::field::retry_after], "45");
  EXPECT_EQ(Json(eleventh)["ok"], false);
  // The right token from that client is refused too; another client is not.
  clock_.Advance(std::chrono::seconds(20));
  net::Response right = Call("/admin/api/v1/queues", kToken);
  EXPECT_EQ(right.result(), http::status::too_many_requests);
  EXPECT_EQ(right[http::field::retry_after], "25");
  EXPECT_EQ(Call("/admin/api/v1/queues", kToken, http::verb::get, "198.51.100.8").result(),
            http::status::ok);
  // The window ends 60 s after its first failure.
  clock_.Advance(std::chrono::seconds(25));
  EXPECT_EQ(Call("/admin/api/v1/queues", kToken).result(), http::status::ok);
}

TEST(FailedAuthLimiterTest, MemoryIsBoundedByForgettingTheOldestWindow) {
  FailedAuthLimiter limiter({/*max_failures=*/1, std::chrono::seconds(60), /*max_tracked=*/3});
  EXPECT_FALSE(limiter.RecordFailure("a", 0));
  EXPECT_TRUE(limiter.RecordFailure("a", 1).has_value());
  for (const char* client : {"b", "c", "d"}) limiter.RecordFailure(client, 2);
  EXPECT_EQ(limiter.tracked(), 3u);
  EXPECT_FALSE(limiter.Refused("a", 3)) << "the oldest window was forgotten";
  EXPECT_FALSE(limiter.Refused("b", 3));
  EXPECT_TRUE(limiter.RecordFailure("b", 3).has_value());
  EXPECT_EQ(limiter.Refused("b", 30'000)->count(), 30'002);
  EXPECT_FALSE(limiter.Refused("b", 60'002));
  EXPECT_EQ(limiter.tracked(), 0u);
  // IPv6 clients are counted per /64; IPv4 and unparsable peers as they are.
  EXPECT_EQ(FailedAuthLimiter::ClientKey("2001:db8:1:2:aaaa::1"),
            FailedAuthLimiter::ClientKey("2001:db8:1:2:bbbb::9"));
  EXPECT_NE(FailedAuthLimiter::ClientKey("2001:db8:1:2::1"),
            FailedAuthLimiter::ClientKey("2001:db8:1:3::1"));
  EXPECT_EQ(FailedAuthLimiter::ClientKey("203.0.113.9"), "203.0.113.9");
  EXPECT_EQ(FailedAuthLimiter::ClientKey(""), "");
}

TEST(RecentWindowTest, QuantilesAndRatesOfTheLastMinutes) {
  prometheus::ClientMetric::Histogram h;
  for (auto [bound, count] : std::vector<std::pair<double, uint64_t>>{
           {0.001, 50}, {0.01, 98}, {0.1, 100}, {std::numeric_limits<double>::infinity(), 100}}) {
    prometheus::ClientMetric::Bucket b;
    b.upper_bound = bound;
    b.cumulative_count = count;
    h.bucket.push_back(b);
  }
  h.sample_count = 100;
  EXPECT_DOUBLE_EQ(*HistogramQuantile(0.5, h), 0.001);
  EXPECT_NEAR(*HistogramQuantile(0.99, h), 0.055, 1e-9);
  EXPECT_FALSE(HistogramQuantile(0.5, prometheus::ClientMetric::Histogram{}));

  RecentWindow window(std::chrono::minutes(5), std::chrono::seconds(10));
  SeriesReadings start{{"s", {0, {}}}};
  EXPECT_DOUBLE_EQ(window.Update(0, start)["s"].seconds, 0);
  SeriesReadings later{{"s", {100, h}}};
  WindowStats stats = window.Update(50'000, later)["s"];
  EXPECT_DOUBLE_EQ(stats.seconds, 50);
  EXPECT_DOUBLE_EQ(stats.rate_per_s, 2);
  EXPECT_DOUBLE_EQ(*stats.p50_seconds, 0.001);
  // Ten minutes on, the base is the newest sample before the window.
  stats = window.Update(650'000, later)["s"];
  EXPECT_DOUBLE_EQ(stats.seconds, 600);
  EXPECT_DOUBLE_EQ(stats.rate_per_s, 0);
  EXPECT_FALSE(stats.p50_seconds.has_value());
}

TEST_F(AdminApiTest, SourcesShowCountsLatencyAndFingerprintsOnly) {
  SourceMetrics* gh = const_cast<SourceMetrics*>(metrics_.FindSource("gh"));
  ASSERT_NE(gh, nullptr);
  gh->accepted->Increment(3);
  gh->unauthorized->Increment(2);
  for (int i = 0; i < 5; ++i) gh->duration->Observe(0.0004);
  clock_.Advance(std::chrono::seconds(10));
  net::Response res = Call("/admin/api/v1/sources", kReadToken);
  ASSERT_EQ(res.result(), http::status::ok) << res.body();
  nlohmann::json body = Json(res);
  ASSERT_EQ(body["items"].size(), 2u) << body.dump();
  EXPECT_EQ(body["total_estimate"], 2);
  const nlohmann::json& row = body["items"][0];
  EXPECT_EQ(row["name"], "gh");
  EXPECT_EQ(row["kind"], "github");
  EXPECT_EQ(row["path"], "/hooks/gh");
  EXPECT_EQ(row["job"], "slack.event");
  EXPECT_EQ(row["accepted"], 3);
  EXPECT_EQ(row["duplicate"], 0);
  EXPECT_EQ(row["rejected"]["unauthorized"], 2);
  EXPECT_EQ(row["rejected"]["overloaded"], 0);
  EXPECT_DOUBLE_EQ(row["window_seconds"].get<double>(), 10);
  EXPECT_DOUBLE_EQ(row["requests_per_s"].get<double>(), 0.5);
  EXPECT_GT(row["ack_p50_seconds"].get<double>(), 0.00025);
  EXPECT_LE(row["ack_p99_seconds"].get<double>(), 0.0005);
  EXPECT_DOUBLE_EQ(row["ack_deadline_seconds"].get<double>(), 10);
  EXPECT_EQ(row["ack_deadline_assumed"], false);
  EXPECT_EQ(row["secret_fingerprint"], Sha256Hex(kSourceSecret).substr(0, 8));
  EXPECT_TRUE(row["previous_secret_fingerprint"].is_null());
  const nlohmann::json& rotating = body["items"][1];
  EXPECT_EQ(rotating["kind"], "hmac");
  EXPECT_EQ(rotating["ack_deadline_assumed"], true);
  EXPECT_EQ(rotating["previous_secret_fingerprint"], Sha256Hex(kPreviousSecret).substr(0, 8));
  EXPECT_EQ(Json(Call("/admin/api/v1/sources?limit=1"))["next_cursor"], "gh");
}

TEST_F(AdminApiTest, IntegrationsShowTheEgressStateWhenWorkersRunHere) {
  // Without egress in the process (ingest): the config side only.
  nlohmann::json off = Json(Call("/admin/api/v1/integrations"));
  ASSERT_EQ(off["items"].size(), 1u) << off.dump();
  EXPECT_EQ(off["items"][0]["live"], false);
  EXPECT_TRUE(off["items"][0]["breaker"]["state"].is_null());
  EXPECT_EQ(off["items"][0]["max_concurrency"], 7);

  egress::Egress egress(config_, metrics_);
  egress.Start();
  MakeApi(&egress);
  net::Response res = Call("/admin/api/v1/integrations", kReadToken);
  ASSERT_EQ(res.result(), http::status::ok) << res.body();
  const nlohmann::json row = Json(res)["items"][0];
  EXPECT_EQ(row["name"], "api");
  EXPECT_EQ(row["base_url"], "http://127.0.0.1:9");
  EXPECT_EQ(row["live"], true);
  EXPECT_EQ(row["breaker"]["state"], "closed");
  EXPECT_TRUE(row["breaker"]["since"].is_string());
  EXPECT_DOUBLE_EQ(row["breaker"]["failure_rate"].get<double>(), 0);
  EXPECT_DOUBLE_EQ(row["breaker"]["opens_at_failure_rate"].get<double>(), 0.5);
  EXPECT_EQ(row["rate_limit"]["rate"], "5/s");
  EXPECT_EQ(row["rate_limit"]["burst"], 3);
  EXPECT_NEAR(row["rate_limit"]["tokens"].get<double>(), 3, 1e-6);
  EXPECT_EQ(row["in_flight"], 0);
  EXPECT_EQ(row["limits"], "shared");  // the default: counted in <queue.path>.limits
  EXPECT_EQ(row["in_flight_process"], 0);
  EXPECT_EQ(row["queued"], 0);
  EXPECT_EQ(row["max_queue"], 1000);
  EXPECT_TRUE(row["latency_p99_seconds"].is_null());

  nlohmann::json overview = Json(Call("/admin/api/v1/overview"));
  EXPECT_EQ(overview["open_breakers"], 0);
  api_->Stop();
  egress.Stop();
}

TEST_F(AdminApiTest, OverviewAndOneQueue) {
  for (int i = 0; i < 3; ++i) Enqueue(MakeJob(JobId(i), "slack.event"));
  clock_.Advance(std::chrono::seconds(5));
  net::Response res = Call("/admin/api/v1/overview", kReadToken);
  ASSERT_EQ(res.result(), http::status::ok) << res.body();
  nlohmann::json body = Json(res);
  EXPECT_TRUE(body["generated_at"].is_string());
  ASSERT_EQ(body["sources"].size(), 2u);
  EXPECT_EQ(body["sources"][0]["name"], "gh");
  EXPECT_DOUBLE_EQ(body["sources"][0]["ack_deadline_seconds"].get<double>(), 10);
  EXPECT_TRUE(body["sources"][0]["ack_p99_of_deadline"].is_null());
  ASSERT_EQ(body["job_types"].size(), 3u) << body.dump();
  const nlohmann::json& slack = body["job_types"][2];
  EXPECT_EQ(slack["job_type"], "slack.event");
  EXPECT_EQ(slack["ready"], 3);
  EXPECT_EQ(slack["concurrency_configured"], 4);
  EXPECT_TRUE(slack.contains("oldest_ready_age_seconds"));
  EXPECT_EQ(slack["paused"], false);
  EXPECT_EQ(body["dead_total"], 0);
  EXPECT_TRUE(body["open_breakers"].is_null()) << "no egress in this process";

  net::Response one = Call("/admin/api/v1/queues/slack.event");
  ASSERT_EQ(one.result(), http::status::ok) << one.body();
  nlohmann::json queue = Json(one);
  EXPECT_EQ(queue["job_type"], "slack.event");
  EXPECT_EQ(queue["ready"], 3);
  EXPECT_EQ(queue["succeeded"], 0);
  EXPECT_EQ(queue["capacity"]["concurrency_configured"], 4);
  EXPECT_EQ(queue["capacity"]["arrived"], 3);
  EXPECT_EQ(Call("/admin/api/v1/queues/action:api").result(), http::status::ok);
  net::Response unknown = Call("/admin/api/v1/queues/nope");
  EXPECT_EQ(unknown.result(), http::status::not_found);
  EXPECT_EQ(Json(unknown)["error"], "no job type \"nope\"");
  EXPECT_EQ(Call("/admin/api/v1/queues/a/b").result(), http::status::not_found);
}

TEST_F(AdminApiTest, NoAnswerCarriesASecret) {
  egress::Egress egress(config_, metrics_);
  egress.Start();
  MakeApi(&egress);
  Enqueue(MakeJob(JobId(1), "slack.event"));
  const std::vector<std::string> secrets = {kToken,          kReadToken,       kOperateToken,
                                            kSourceSecret,   kPreviousSecret,  kIntegrationSecret,
                                            std::string(kSourceSecret) + "-new"};
  std::vector<net::Response> answers;
  for (const char* path : {"/admin/api/v1/queues", "/admin/api/v1/queues/slack.event",
                           "/admin/api/v1/queues/nope", "/admin/api/v1/capacity",
                           "/admin/api/v1/sources", "/admin/api/v1/integrations",
                           "/admin/api/v1/overview", "/admin/api/v1/nope", "/admin"}) {
    answers.push_back(Call(path));
    answers.push_back(Call(path, kReadToken, http::verb::delete_));
    answers.push_back(Call(path, kOperateToken, http::verb::post));
  }
  for (int i = 0; i < 12; ++i) {
    answers.push_back(Call("/admin/api/v1/sources", std::string(kToken) + "-", http::verb::get,
                           "203.0.113.50"));
  }
  EXPECT_EQ(answers.back().result(), http::status::too_many_requests);
  for (const net::Response& res : answers) {
    for (const std::string& secret : secrets) {
      EXPECT_EQ(res.body().find(secret), std::string::npos) << secret << " in " << res.body();
      for (const auto& field : res) {
        EXPECT_EQ(std::string_view(field.value()).find(secret), std::string_view::npos);
      }
    }
  }
  api_->Stop();
  egress.Stop();
}

// The web console (admin/console.h): its page and files need no token; its login turns a
// token into a signed session cookie whose changes need the CSRF token and the same origin.
class ConsoleTest : public AdminApiTest {
 protected:
  void SetUp() override {
    ui_dir_ = dir_.path() + "/ui";
    std::filesystem::create_directories(ui_dir_);
    std::ofstream(ui_dir_ + "/index.html")
        << R"(<!doctype html><script type="module" nonce="{{nonce}}" src="assets/{{version}}/app.js">)"
        << R"(</script><link rel="stylesheet" href="assets/{{version}}/style.css">)";
    std::ofstream(ui_dir_ + "/app.js") << "import './pages/jobs.js';\n";
    std::filesystem::create_directories(ui_dir_ + "/pages");
    std::ofstream(ui_dir_ + "/pages/jobs.js") << "export const jobs = 1;\n";
    std::ofstream(dir_.path() + "/secret.txt") << "not for the browser";
    setenv("FIREBREAK_ADMIN_UI_DIR", ui_dir_.c_str(), 1);
    AdminApiTest::SetUp();  // builds the API, which reads the variable
    unsetenv("FIREBREAK_ADMIN_UI_DIR");
  }

  net::Response Get(const std::string& target) { return Call(target, ""); }

  // Logs in with `token`; the cookie value and the CSRF token.
  struct Login {
    std::string cookie;
    std::string csrf;
    net::Response res;
  };
  Login LogIn(const std::string& token, const std::string& origin = "http://admin.test:8082") {
    net::Request req{http::verb::post, "/admin/login", 11};
    req.peer = kPeer;
    req.set(http::field::host, "admin.test:8082");
    if (!origin.empty()) req.set(http::field::origin, origin);
    req.body() = nlohmann::json{{"token", token}}.dump();
    Login login{"", "", Run(req)};
    std::string set_cookie(login.res[http::field::set_cookie]);
    login.cookie = Between(set_cookie, "fb_session=", ";");
    nlohmann::json body = nlohmann::json::parse(login.res.body(), nullptr, false);
    if (body.is_object() && body["csrf"].is_string()) login.csrf = body["csrf"];
    return login;
  }

  // A request as the console's page sends it, with whatever of its proofs is given.
  net::Response WithCookie(http::verb method, const std::string& target, const std::string& cookie,
                           const std::string& csrf, const std::string& origin,
                           const std::string& host = "admin.test:8082") {
    net::Request req{method, target, 11};
    req.peer = kPeer;
    req.set(http::field::host, host);
    req.set(http::field::cookie, "theme=dark; fb_session=" + cookie);
    if (!csrf.empty()) req.set(admin::kCsrfHeader, csrf);
    if (!origin.empty()) req.set(http::field::origin, origin);
    return Run(req);
  }

  std::string ui_dir_;
};

TEST_F(ConsoleTest, ThePageCarriesAFreshNonceInItsCspAndTheFilesNeedNoToken) {
  net::Response root = Get("/admin");
  EXPECT_EQ(root.result(), http::status::moved_permanently);
  EXPECT_EQ(root[http::field::location], "admin/");  // relative: any proxy prefix

  net::Response page = Get("/admin/");
  ASSERT_EQ(page.result(), http::status::ok) << page.body();
  EXPECT_EQ(page[http::field::content_type], "text/html; charset=utf-8");
  std::string csp(page["Content-Security-Policy"]);
  const std::string nonce = Between(csp, "script-src 'nonce-", "'");
  ASSERT_EQ(nonce.size(), 24u) << csp;  // 16 random bytes, base64
  EXPECT_NE(csp.find("default-src 'none'"), std::string::npos);
  EXPECT_NE(csp.find("frame-ancestors 'none'"), std::string::npos);
  EXPECT_EQ(csp.find("unsafe-inline"), std::string::npos);
  // Served from disk (FIREBREAK_ADMIN_UI_DIR) the version is "dev".
  EXPECT_NE(page.body().find("nonce=\"" + nonce + "\" src=\"assets/dev/app.js\""),
            std::string::npos)
      << page.body();
  EXPECT_EQ(page.body().find("{{"), std::string::npos);
  EXPECT_EQ(page["X-Content-Type-Options"], "nosniff");
  EXPECT_EQ(page["X-Frame-Options"], "DENY");
  std::string again(Get("/admin/")["Content-Security-Policy"]);
  EXPECT_NE(again, csp) << "a nonce is used once";

  net::Response script = Get("/admin/assets/dev/app.js");
  ASSERT_EQ(script.result(), http::status::ok);
  EXPECT_EQ(script[http::field::content_type], "text/javascript; charset=utf-8");
  EXPECT_EQ(script[http::field::cache_control], "no-cache");  // from disk: may change
  EXPECT_EQ(script.body(), "import './pages/jobs.js';\n");
  EXPECT_EQ(Get("/admin/assets/dev/pages/jobs.js").result(), http::status::ok);
  net::Request cached{http::verb::get, "/admin/assets/dev/app.js", 11};
  cached.set(http::field::if_none_match, script[http::field::etag]);
  EXPECT_EQ(Run(cached).result(), http::status::not_modified);

  // Only the app's own files, and the page only with its CSP.
  for (const char* target : {"/admin/assets/dev/index.html", "/admin/assets/dev/../secret.txt",
                             "/admin/assets/dev/pages/../../secret.txt", "/admin/assets/dev/",
                             "/admin/assets/dev/nope.js", "/admin/assets/app.js",
                             "/admin/assets/0123456789ab/app.js"}) {
    net::Response res = Get(target);
    EXPECT_EQ(res.result(), http::status::not_found) << target;
    EXPECT_EQ(res.body().find("not for the browser"), std::string::npos) << target;
  }
  // Anything else under /admin still needs a token.
  EXPECT_EQ(Get("/admin/api/v1/queues").result(), http::status::unauthorized);
  EXPECT_EQ(Get("/admin/jobs").result(), http::status::unauthorized);
}

TEST_F(AdminApiTest, TheEmbeddedConsoleIsVersionedAndCachedForGood) {
  // The binary's own copy of src/admin/ui (cmake/embed_assets.cmake).
  net::Response page = Call("/admin/", "");
  ASSERT_EQ(page.result(), http::status::ok) << page.body();
  const std::string version = Between(page.body(), "src=\"assets/", "/app.js\"");
  ASSERT_EQ(version.size(), 12u) << page.body();
  EXPECT_EQ(version.find_first_not_of("0123456789abcdef"), std::string::npos) << version;
  EXPECT_EQ(page.body().find("{{"), std::string::npos);
  net::Response script = Call("/admin/assets/" + version + "/app.js", "");
  ASSERT_EQ(script.result(), http::status::ok);
  EXPECT_EQ(script[http::field::cache_control], "public, max-age=31536000, immutable");
  EXPECT_EQ(Call("/admin/assets/" + version + "/pages/login.js", "").result(),
            http::status::ok);
  EXPECT_EQ(Call("/admin/assets/dev/app.js", "").result(), http::status::not_found);
  EXPECT_EQ(Call("/admin/assets/" + version + "/index.html", "").result(),
            http::status::not_found);
}

TEST_F(ConsoleTest, LoginSetsASignedHttpOnlyStrictCookieThatCarriesTheTokensScope) {
  Login login = LogIn(kOperateToken);
  ASSERT_EQ(login.res.result(), http::status::ok) << login.res.body();
  std::string set_cookie(login.res[http::field::set_cookie]);
  EXPECT_NE(set_cookie.find("; HttpOnly"), std::string::npos) << set_cookie;
  EXPECT_NE(set_cookie.find("; SameSite=Strict"), std::string::npos) << set_cookie;
  EXPECT_EQ(set_cookie.find("Secure"), std::string::npos) << "plain http: " << set_cookie;
  EXPECT_EQ(set_cookie.find("Path="), std::string::npos) << "the login URL's folder: " << set_cookie;
  EXPECT_EQ(set_cookie.find(kOperateToken), std::string::npos);
  EXPECT_EQ(login.res.body().find(kOperateToken), std::string::npos);
  nlohmann::json body = Json(login.res);
  EXPECT_EQ(body["name"], "ops");
  EXPECT_EQ(body["scope"], "operate");
  EXPECT_EQ(body["auth"], "session");
  EXPECT_EQ(body["expires_at_ms"], clock_.NowMs() + 12 * 3600 * 1000);

  net::Response session = WithCookie(http::verb::get, "/admin/api/v1/session", login.cookie, "", "");
  ASSERT_EQ(session.result(), http::status::ok) << session.body();
  EXPECT_EQ(Json(session)["csrf"], login.csrf);
  EXPECT_EQ(WithCookie(http::verb::get, "/admin/api/v1/queues", login.cookie, "", "").result(),
            http::status::ok);
  // A bearer caller has no CSRF token: it needs none.
  nlohmann::json bearer = Json(Call("/admin/api/v1/session", kReadToken));
  EXPECT_EQ(bearer["auth"], "bearer");
  EXPECT_EQ(bearer["scope"], "read");
  EXPECT_TRUE(bearer["csrf"].is_null());

  // Behind an https proxy the cookie is Secure.
  net::Request https{http::verb::post, "/admin/login", 11};
  https.set("X-Forwarded-Proto", "https");
  https.body() = nlohmann::json{{"token", kReadToken}}.dump();
  net::Response secure = Run(https);
  EXPECT_NE(std::string(secure[http::field::set_cookie]).find("; Secure"), std::string::npos);

  // A cookie renamed to another token, re-timed or re-signed is no session; nor is one
  // past its 12 hours.
  std::string renamed = "admin" + login.cookie.substr(login.cookie.find(':'));
  std::string later = login.cookie;
  later.replace(later.find(':') + 1, 1, "9");
  std::string resigned = login.cookie.substr(0, login.cookie.rfind(':') + 1) + std::string(64, 'a');
  for (const std::string& forged : {renamed, later, resigned, std::string("ops:1:2"),
                                    std::string("")}) {
    EXPECT_EQ(WithCookie(http::verb::get, "/admin/api/v1/queues", forged, "", "").result(),
              http::status::unauthorized)
        << forged;
  }
  clock_.Advance(std::chrono::hours(12));
  EXPECT_EQ(WithCookie(http::verb::get, "/admin/api/v1/queues", login.cookie, "", "").result(),
            http::status::unauthorized);
}

TEST_F(ConsoleTest, CookieChangesNeedTheCsrfTokenAndTheSameOrigin) {
  Enqueue(MakeJob(JobId(1), "slack.event"));
  Login ops = LogIn(kOperateToken);
  ASSERT_FALSE(ops.cookie.empty());
  ASSERT_FALSE(ops.csrf.empty());
  const std::string pause = "/admin/api/v1/queues/slack.event/pause";
  const std::string mine = "http://admin.test:8082";
  auto refused = [&](const net::Response& res, const std::string& error) {
    EXPECT_EQ(res.result(), http::status::forbidden) << res.body();
    EXPECT_NE(Json(res)["error"].get<std::string>().find(error), std::string::npos) << res.body();
  };
  refused(WithCookie(http::verb::post, pause, ops.cookie, "", mine), "X-CSRF-Token");
  refused(WithCookie(http::verb::post, pause, ops.cookie, ops.csrf + "0", mine),
          "X-CSRF-Token");
  refused(WithCookie(http::verb::post, pause, ops.cookie, ops.csrf, "http://evil.test"),
          "cross-origin");
  refused(WithCookie(http::verb::post, pause, ops.cookie, ops.csrf, ""), "Origin");
  refused(WithCookie(http::verb::post, pause, ops.cookie, ops.csrf, "null"), "cross-origin");
  refused(WithCookie(http::verb::post, pause, ops.cookie, ops.csrf, "http://admin.test:8083"),
          "cross-origin");
  {
    net::Request req{http::verb::post, pause, 11};
    req.set(http::field::host, "admin.test:8082");
    req.set(http::field::cookie, "fb_session=" + ops.cookie);
    req.set(http::field::origin, mine);
    req.set(admin::kCsrfHeader, ops.csrf);
    req.set("Sec-Fetch-Site", "same-site");
    refused(Run(req), "Sec-Fetch-Site");
  }
  // Another session's token is no good either.
  Login other = LogIn(kOperateToken);
  refused(WithCookie(http::verb::post, pause, ops.cookie, other.csrf, mine), "X-CSRF-Token");
  Result<std::vector<TypeDepth>> before = queue_->Stats();
  ASSERT_TRUE(before.ok());
  for (const TypeDepth& depth : *before) EXPECT_FALSE(depth.paused) << "a refused change ran";

  net::Response paused = WithCookie(http::verb::post, pause, ops.cookie, ops.csrf, mine);
  EXPECT_EQ(paused.result(), http::status::ok) << paused.body();
  // Behind a proxy the browser's origin is the proxy's host.
  net::Request proxied{http::verb::post, "/admin/api/v1/queues/slack.event/resume", 11};
  proxied.set(http::field::host, "127.0.0.1:8082");
  proxied.set("X-Forwarded-Host", "ops.example.com");
  proxied.set(http::field::cookie, "fb_session=" + ops.cookie);
  proxied.set(http::field::origin, "https://ops.example.com");
  proxied.set(admin::kCsrfHeader, ops.csrf);
  EXPECT_EQ(Run(proxied).result(), http::status::ok);

  // A read session's forged change passes the CSRF check and still meets its scope.
  Login viewer = LogIn(kReadToken);
  refused(WithCookie(http::verb::post, pause, viewer.cookie, viewer.csrf, mine),
          "this needs scope \"operate\"");
  // Logging out needs no scope but does need the proofs; it clears the cookie.
  refused(WithCookie(http::verb::post, "/admin/logout", viewer.cookie, "", mine), "X-CSRF-Token");
  net::Response out = WithCookie(http::verb::post, "/admin/logout", viewer.cookie, viewer.csrf, mine);
  EXPECT_EQ(out.result(), http::status::no_content);
  EXPECT_NE(std::string(out[http::field::set_cookie]).find("fb_session=; Max-Age=0"),
            std::string::npos);
  // A login from another site's page is refused too (login CSRF).
  EXPECT_EQ(LogIn(kOperateToken, "http://evil.test").res.result(), http::status::forbidden);
}

TEST_F(ConsoleTest, WrongLoginsCountAsFailedAuthenticationsButNoCredentialDoesNot) {
  // A browser opening the console before logging in presents nothing: never limited.
  for (int i = 0; i < 30; ++i) {
    EXPECT_EQ(Get("/admin/api/v1/session").result(), http::status::unauthorized) << i;
  }
  net::Request bad{http::verb::post, "/admin/login", 11};
  bad.peer = kPeer;
  bad.body() = "token=x";
  EXPECT_EQ(Run(bad).result(), http::status::bad_request);
  for (int i = 1; i <= 10; ++i) {
    net::Response res = LogIn("guess-" + std::to_string(i)).res;
    EXPECT_EQ(res.result(), http::status::unauthorized) << i;
    EXPECT_TRUE(res[http::field::set_cookie].empty());
  }
  EXPECT_EQ(LogIn("guess-11").res.result(), http::status::too_many_requests);
  net::Response right = LogIn(kToken).res;
  EXPECT_EQ(right.result(), http::status::too_many_requests);
  EXPECT_TRUE(right[http::field::set_cookie].empty());
  EXPECT_EQ(Call("/admin/api/v1/queues").result(), http::status::too_many_requests);
}

}  // namespace
}  // namespace firebreak
