// The capacity read-out end to end: `firebreak run` with an admin token and a handler
// that takes ~50 ms, ~20 events/s for 4 s; GET /admin/api/v1/capacity must report that
// arrival rate, that mean job time and concurrency_needed = λ·W, refuse requests
// without the token, and `firebreak queue stats` (another process) must show the same
// columns. sqlite serves the admin API on the ingress listener (admin_listen =
// "ingress", the explicit opt-in), redis on a server.admin_listen of its own.
#include <gtest/gtest.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <thread>

#include "harness.h"

namespace firebreak::testing {
namespace {

using Steady = std::chrono::steady_clock;

constexpr char kSecret[] = "capacity-test-secret";
constexpr char kToken[] = "capacity-test-admin-token";
constexpr int kEvents = 80;
constexpr std::chrono::milliseconds kSpacing{50};  // 20 events/s for 4 s
constexpr double kHandlerSeconds = 0.05;

constexpr char kSleepyBot[] = R"PY(
import json, sys, time
for line in sys.stdin:
    env = json.loads(line)
    time.sleep(0.05)
    print(json.dumps({"id": env["id"], "ok": True}), flush=True)
)PY";

class CapacityTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    backend_ = std::make_unique<QueueBackend>(GetParam(), dir_);
    ASSERT_TRUE(backend_->Start()) << backend_->Describe();
    port_ = FreePort();
    own_admin_listener_ = backend_->is_redis();
    admin_port_ = own_admin_listener_ ? FreePort() : port_;
    dir_.Write("hmac.secret", kSecret);
    dir_.Write("admin.token", kToken);
    // Never the default 127.0.0.1:8082: tests run side by side.
    std::string admin_listen =
        own_admin_listener_ ? "admin_listen = \"127.0.0.1:" + std::to_string(admin_port_) + "\"\n"
                            : "admin_listen = \"ingress\"\n";
    config_ = dir_.Write("firebreak.toml", R"(
[server]
listen = "127.0.0.1:)" + std::to_string(port_) +
                                               R"("
threads = 1
admin_token = { file = ")" + dir_.File("admin.token") +
                                               R"(" }
)" + admin_listen + "\n" + backend_->QueueToml("durability = \"process\"\n") +
                                               R"(
[worker]
sidecar = ""
shutdown_grace = "2s"

[[sources]]
name = "test"
kind = "hmac"
path = "/hooks/test"
secret = { file = ")" + dir_.File("hmac.secret") +
                                               R"(" }
dedupe = "/id"
job = "work"

[[jobs]]
type = "work"
handler = { command = ["/usr/bin/python3", ")" +
                                               dir_.Write("bot.py", kSleepyBot) + R"("] }
concurrency = 4
)");
    process_ = std::make_unique<FirebreakProcess>("run", config_, dir_.File("log.txt"), port_);
    ASSERT_TRUE(process_->Start()) << process_->Log();
  }

  Result<HttpResponse> Admin(const std::string& path, const std::string& token = kToken) {
    std::vector<std::pair<std::string, std::string>> headers;
    if (!token.empty()) headers.emplace_back("Authorization", "Bearer " + token);
    return HttpCall({"GET", "http://127.0.0.1:" + std::to_string(admin_port_) + path, headers, "",
                     std::chrono::seconds(5)});
  }

  TempDir dir_;
  std::unique_ptr<QueueBackend> backend_;
  uint16_t port_ = 0;
  uint16_t admin_port_ = 0;
  bool own_admin_listener_ = false;
  std::string config_;
  std::unique_ptr<FirebreakProcess> process_;  // declared last: stopped before the store
};

TEST_P(CapacityTest, AdminCapacityAndQueueStatsApplyLittlesLawToLiveTraffic) {
  const Steady::time_point first_send = Steady::now();
  for (int i = 0; i < kEvents; ++i) {
    std::this_thread::sleep_until(first_send + i * kSpacing);
    auto res = PostHmacSigned(port_, "/hooks/test", kSecret,
                              R"({"id":"ev-)" + std::to_string(i) + R"("})");
    ASSERT_TRUE(res.ok()) << res.status().ToString();
    ASSERT_EQ(res->status, 200) << res->body;
  }
  const double send_seconds = std::chrono::duration<double>(Steady::now() - first_send).count();
  ASSERT_TRUE(WaitFor([&] { return QueuedJobs(config_, "work") == 0; }, std::chrono::seconds(20)))
      << process_->Log();

  // The last outcomes may still be on their way to the store: wait for all 80.
  nlohmann::json work;
  double asked_after = 0;
  std::string last;  // the last answer, for the failure message
  ASSERT_TRUE(WaitFor(
      [&] {
        auto res = Admin("/admin/api/v1/capacity");
        asked_after = std::chrono::duration<double>(Steady::now() - first_send).count();
        last = res.ok() ? std::to_string(res->status) + " " + res->body : res.status().ToString();
        if (!res.ok() || res->status != 200) return false;
        nlohmann::json body = nlohmann::json::parse(res->body, nullptr, false);
        if (!body.is_object() || !body["items"].is_array()) return false;
        for (const auto& item : body["items"]) {
          if (item["job_type"] == "work") work = item;
        }
        return work.is_object() && work["finished"] == kEvents;
      },
      std::chrono::seconds(10)))
      << last;
  std::cout << "[ measured ] " << GetParam() << ": sent " << kEvents << " in " << send_seconds
            << " s; capacity " << work.dump() << "\n";

  EXPECT_EQ(work["arrived"], kEvents);
  EXPECT_EQ(work["concurrency_configured"], 4);
  EXPECT_EQ(work["ready"], 0);
  EXPECT_EQ(work["in_flight"], 0);
  // A fresh store: the rate is over the time since its first arrival.
  const double window = work["window_seconds"].get<double>();
  EXPECT_GE(window, send_seconds - 0.5);
  EXPECT_LE(window, asked_after + 0.5);
  const double rate = work["arrival_rate_per_s"].get<double>();
  EXPECT_NEAR(rate, kEvents / window, 0.01 * rate);
  const double sent_rate = kEvents / send_seconds;  // ~20/s
  EXPECT_GT(rate, 0.6 * sent_rate);
  EXPECT_LT(rate, 1.1 * sent_rate);
  // The handler sleeps 50 ms; the attempt adds a pipe round trip and Python's overhead.
  const double job_seconds = work["mean_job_seconds"].get<double>();
  EXPECT_GE(job_seconds, kHandlerSeconds * 0.95);
  EXPECT_LT(job_seconds, 0.5);
  const double needed = work["concurrency_needed"].get<double>();
  EXPECT_NEAR(needed, rate * job_seconds, 1e-9 + 1e-6 * needed);
  EXPECT_NEAR(work["utilization"].get<double>(), needed / 4, 1e-9);
  EXPECT_GT(needed, 0.5);  // ~20/s × ≥50 ms ≥ ~0.8 in flight
  EXPECT_LT(needed, 4);    // the 4 slots kept up: nothing is left waiting
  EXPECT_TRUE(work["hints"].empty()) << work["hints"].dump();

  // Without the token, or with a wrong one: 401, and nothing of the data.
  for (const std::string& token : {std::string(), std::string("wrong-token")}) {
    auto refused = Admin("/admin/api/v1/capacity", token);
    ASSERT_TRUE(refused.ok()) << refused.status().ToString();
    EXPECT_EQ(refused->status, 401) << refused->body;
    EXPECT_EQ(refused->body.find("work"), std::string::npos);
  }
  auto missing = Admin("/admin/api/v1/nope");
  ASSERT_TRUE(missing.ok());
  EXPECT_EQ(missing->status, 404);
  auto queues = Admin("/admin/api/v1/queues");
  ASSERT_TRUE(queues.ok());
  EXPECT_EQ(queues->status, 200);
  EXPECT_NE(queues->body.find(R"("job_type":"work")"), std::string::npos) << queues->body;
  if (own_admin_listener_) {
    // On its own listener, the ingress one does not serve it.
    EXPECT_EQ(GetStatus(port_, "/admin/api/v1/capacity"), 404);
  }

  // `firebreak queue stats`, a process of its own, reads the same counts from the store.
  CommandResult table = RunFirebreak({"queue", "stats", "-c", config_}, std::chrono::seconds(20));
  ASSERT_EQ(table.exit_code, 0) << table.out;
  for (const char* column : {"READY", "DEAD", "ARRIVALS/S", "MEAN_JOB", "NEEDED", "CONFIGURED"}) {
    EXPECT_NE(table.out.find(column), std::string::npos) << column << " in\n" << table.out;
  }
  EXPECT_NE(table.out.find("Little's law"), std::string::npos) << table.out;
  CommandResult json = RunFirebreak({"queue", "stats", "--json", "-c", config_});
  ASSERT_EQ(json.exit_code, 0) << json.out;
  nlohmann::json rows = nlohmann::json::parse(json.out, nullptr, false);
  ASSERT_TRUE(rows.is_array()) << json.out;
  ASSERT_EQ(rows.size(), 1u) << json.out;
  EXPECT_EQ(rows[0]["job_type"], "work");
  EXPECT_EQ(rows[0]["ready"], 0);
  EXPECT_EQ(rows[0]["arrived"], kEvents);
  EXPECT_EQ(rows[0]["finished"], kEvents);
  EXPECT_EQ(rows[0]["concurrency_configured"], 4);
  EXPECT_DOUBLE_EQ(rows[0]["mean_job_seconds"].get<double>(), job_seconds);
  EXPECT_GT(rows[0]["arrival_rate_per_s"].get<double>(), 0.5 * sent_rate);

  EXPECT_EQ(process_->Terminate(), 0) << process_->Log();
}

INSTANTIATE_TEST_SUITE_P(Backends, CapacityTest, ::testing::ValuesIn(AllBackends()), BackendName);

}  // namespace
}  // namespace firebreak::testing
