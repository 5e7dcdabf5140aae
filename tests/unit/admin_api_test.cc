// The admin API (admin/admin_api.h) over a real SQLite queue: bearer-token checks before
// any routing, 404/405, the queues and capacity lists with paging, and its own listener.
#include "admin/admin_api.h"

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <future>
#include <nlohmann/json.hpp>
#include <optional>

#include "cli/http_client.h"
#include "common/clock.h"
#include "config/config.h"
#include "queue/queue.h"
#include "queue_test_util.h"

namespace firebreak {
namespace {

namespace asio = boost::asio;
namespace http = boost::beast::http;
using queue_test::JobId;
using queue_test::MakeJob;
using queue_test::TempDir;

constexpr char kToken[] = "s3cret-admin-token";

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

[[integrations]]
name = "api"
base_url = "http://127.0.0.1:9"
max_concurrency = 7
)",
                                        "admin.toml");
    ASSERT_TRUE(config.ok()) << config.status().ToString();
    config_ = std::move(config).value();
    config_.queue.path = dir_.path() + "/queue.db";
    config_.queue.durability = Durability::kProcess;
    Result<std::unique_ptr<Queue>> queue = OpenQueue(config_.queue, clock_);
    ASSERT_TRUE(queue.ok()) << queue.status().ToString();
    queue_ = std::move(queue).value();
    api_ = std::make_unique<AdminApi>(config_, *queue_, kToken);
  }

  net::Response Call(const std::string& target, const std::string& token = kToken,
                     http::verb method = http::verb::get) {
    net::Request req{method, target, 11};
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
  Config config_;
  std::unique_ptr<Queue> queue_;
  std::unique_ptr<AdminApi> api_;
};

TEST_F(AdminApiTest, EveryAdminPathNeedsTheBearerToken) {
  for (const std::string target :
       {"/admin/api/v1/capacity", "/admin/api/v1/queues", "/admin/api/v1/nope", "/admin"}) {
    for (const std::string& token : {std::string(), std::string("wrong"), std::string(kToken) + "x",
                                     std::string(kToken).substr(1)}) {
      net::Response res = Call(target, token);
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
  AdminApi off(config_, *queue_, "");
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
  EXPECT_EQ(Call("/admin").result(), http::status::not_found);
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

}  // namespace
}  // namespace firebreak
