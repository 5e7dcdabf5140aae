// Acceptance 4 (and issue 3): every event that got a 200 is handled at least once,
// on every queue backend, even when `firebreak run` is killed with SIGKILL in the
// middle of the stream, and (redis) when the Redis server itself crashes and comes back.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdio>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <thread>

#include "harness.h"

namespace firebreak::testing {
namespace {

constexpr char kSecret[] = "durability-secret";
constexpr int kEvents = 5000;
constexpr int kClients = 4;

// Appends every handled dedupe key to the file in argv[1].
constexpr char kRecordingBot[] = R"PY(
import json, sys
out = open(sys.argv[1], "a")
for line in sys.stdin:
    env = json.loads(line)
    out.write(env["dedupe_key"] + "\n"); out.flush()
    print(json.dumps({"id": env["id"], "ok": True}), flush=True)
)PY";

// Slack-signed events "EvDur<i>" for i in [0, kEvents), sent by kClients keep-alive
// clients. With `resend_for` > 0 a request that did not get a 200 is sent again (as a
// platform retries) until it does or `resend_for` has passed since its first try.
class Traffic {
 public:
  Traffic(uint16_t port, std::chrono::seconds resend_for) : port_(port), resend_for_(resend_for) {}
  ~Traffic() {  // an early return of the test stops the clients instead of waiting them out
    stop_ = true;
    Join();
  }

  void Start() {
    for (int c = 0; c < kClients; ++c) clients_.emplace_back([this] { Client(); });
  }
  void Join() {
    for (auto& t : clients_) {
      if (t.joinable()) t.join();
    }
  }
  // Events that got their final answer (a 200, or given up).
  int answered() const { return answered_.load(); }

  std::set<std::string> acked;  // dedupe keys that got a 200
  int not_acked = 0;            // events that never got a 200
  int resends = 0;
  int transport_errors = 0;     // no HTTP answer (refused, reset, timeout)
  std::map<int, int> statuses;  // every HTTP answer, by status
  bool retry_after_on_every_503 = true;

 private:
  void Client() {
    auto connection = std::make_unique<HttpConnection>("127.0.0.1", port_);
    for (int i = next_++; i < kEvents && !stop_; i = next_++) {
      std::string event_id = "EvDur" + std::to_string(i);
      std::string body = R"({"type":"event_callback","event_id":")" + event_id +
                         R"(","event":{"type":"message","text":"n)" + std::to_string(i) + "\"}}";
      auto first_try = std::chrono::steady_clock::now();
      bool ok = false;
      while (true) {
        auto res = connection->Send("POST", "/hooks/slack",
                                    SlackHeaders(kSecret, body, NowSeconds(), "application/json"),
                                    body, std::chrono::seconds(5));
        ok = res.ok() && res->status == 200;
        {
          std::lock_guard lock(mu_);
          if (res.ok()) {
            ++statuses[res->status];
            if (res->status == 503 && res->Header("Retry-After").empty()) {
              retry_after_on_every_503 = false;
            }
          } else {
            ++transport_errors;
          }
        }
        if (!res.ok()) {  // firebreak is down or restarting: don't spin through the events
          connection = std::make_unique<HttpConnection>("127.0.0.1", port_);
          std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
        if (ok || stop_ || std::chrono::steady_clock::now() - first_try >= resend_for_) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        std::lock_guard lock(mu_);
        ++resends;
      }
      {
        std::lock_guard lock(mu_);
        if (ok) {
          acked.insert("slack:" + event_id);
        } else {
          ++not_acked;  // the platform would retry it later; it is not counted as sent
        }
      }
      ++answered_;
    }
  }

  uint16_t port_;
  std::chrono::seconds resend_for_;
  std::atomic<int> next_{0}, answered_{0};
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::vector<std::thread> clients_;
};

// `firebreak run` with durability "fsync" on one backend; the handler records keys.
class DurabilityFixture : public ::testing::Test {
 protected:
  void StartOn(const std::string& backend_name) {
    backend_ = std::make_unique<QueueBackend>(backend_name, dir_);  // redis: appendfsync always
    ASSERT_TRUE(backend_->Start()) << backend_->Describe();
    port_ = FreePort();
    dir_.Write("slack.secret", kSecret);
    std::string bot = dir_.Write("bot.py", kRecordingBot);
    config_ = dir_.Write("firebreak.toml", R"(
[server]
listen = "127.0.0.1:)" + std::to_string(port_) +
                                               R"("

)" + backend_->QueueToml("durability = \"fsync\"\n") +
                                               R"(
[telemetry]
log_level = "warn"

[worker]
sidecar = "127.0.0.1:0"  # tests run in parallel: any free port

[[sources]]
name = "slack"
kind = "slack"
path = "/hooks/slack"
secret = { file = ")" + dir_.File("slack.secret") +
                                               R"(" }
job = "slack.event"

[[jobs]]
type = "slack.event"
handler = { command = ["/usr/bin/python3", ")" +
                                               bot + R"(", ")" + dir_.File("handled.txt") + R"("] }
concurrency = 8
timeout = "3s"
)");
    process_ = std::make_unique<FirebreakProcess>("run", config_, dir_.File("log.txt"), port_);
    ASSERT_TRUE(process_->Start()) << process_->Log();
  }

  // Waits (bounded) until every acked key is in the handler's file; returns how many
  // are still missing, after printing the run's numbers.
  size_t LostAfterDrain(const Traffic& traffic, const std::string& label) {
    std::set<std::string> handled;
    WaitFor(
        [&] {
          for (auto& key : ReadLines(dir_.File("handled.txt"))) handled.insert(key);
          for (auto& key : traffic.acked) {
            if (!handled.count(key)) return false;
          }
          return true;
        },
        std::chrono::seconds(30));
    size_t lost = 0;
    for (auto& key : traffic.acked) lost += handled.count(key) ? 0 : 1;
    std::string statuses;
    for (auto& [status, n] : traffic.statuses) {
      statuses += " " + std::to_string(status) + "x" + std::to_string(n);
    }
    std::printf(
        "durability[%s/%s]: sent %d, acked %zu, not acked %d, resends %d, transport errors %d, "
        "answers%s, handled %zu distinct, lost %zu\n",
        backend_->name().c_str(), label.c_str(), kEvents, traffic.acked.size(), traffic.not_acked,
        traffic.resends, traffic.transport_errors, statuses.c_str(), handled.size(), lost);
    return lost;
  }

  TempDir dir_;
  std::unique_ptr<QueueBackend> backend_;
  uint16_t port_ = 0;
  std::string config_;
  std::unique_ptr<FirebreakProcess> process_;  // declared last: stopped before the store
};

class DurabilityTest : public DurabilityFixture,
                       public ::testing::WithParamInterface<std::string> {};

TEST_P(DurabilityTest, NoAckedEventIsLostAcrossKill9) {
  ASSERT_NO_FATAL_FAILURE(StartOn(GetParam()));
  // Not acked while firebreak is down: counted, not re-sent (the platform's business).
  Traffic traffic(port_, std::chrono::seconds(0));
  traffic.Start();
  // Kill -9 firebreak (never the store) twice mid-stream, restarting each time.
  for (int threshold : {kEvents * 3 / 10, kEvents * 7 / 10}) {
    ASSERT_TRUE(WaitFor([&] { return traffic.answered() >= threshold; }, std::chrono::seconds(40)));
    process_->Kill9();
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    ASSERT_TRUE(process_->Start()) << process_->Log();
  }
  traffic.Join();

  EXPECT_GE(traffic.acked.size(), static_cast<size_t>(kEvents / 2));  // the stream really flowed
  EXPECT_EQ(LostAfterDrain(traffic, "kill9-firebreak"), 0u) << process_->Log();
  EXPECT_EQ(process_->Terminate(), 0);
}

INSTANTIATE_TEST_SUITE_P(Backends, DurabilityTest, ::testing::ValuesIn(AllBackends()), BackendName);

using RedisDurabilityTest = DurabilityFixture;

// Redis crashes (SIGKILL) mid-traffic and restarts on the same port and AOF dir,
// with firebreak left running: every 200 was durable in the AOF, so its job is
// handled; while Redis is down ingress answers 503 and the test re-sends like a
// platform would until the event is stored.
TEST_F(RedisDurabilityTest, NoAckedEventIsLostWhenRedisIsKilledAndRestarted) {
  ASSERT_NO_FATAL_FAILURE(StartOn("redis"));
  Traffic traffic(port_, std::chrono::seconds(30));
  traffic.Start();
  ASSERT_TRUE(WaitFor([&] { return traffic.answered() >= kEvents / 3; }, std::chrono::seconds(40)));
  backend_->redis().Kill9();
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  ASSERT_TRUE(backend_->redis().Start()) << backend_->Describe();
  traffic.Join();

  EXPECT_EQ(traffic.not_acked, 0) << "events still refused 30 s after Redis came back";
  EXPECT_EQ(traffic.acked.size(), static_cast<size_t>(kEvents));
  EXPECT_GT(traffic.statuses[503], 0) << "the outage never showed as 503";
  EXPECT_TRUE(traffic.retry_after_on_every_503);
  int other_statuses = 0;
  for (auto& [status, n] : traffic.statuses)
    other_statuses += status == 200 || status == 503 ? 0 : n;
  EXPECT_EQ(other_statuses, 0) << "answers other than 200 and 503 during the outage";
  EXPECT_EQ(LostAfterDrain(traffic, "kill9-redis"), 0u) << process_->Log();
  EXPECT_EQ(process_->Terminate(), 0);
}

}  // namespace
}  // namespace firebreak::testing
