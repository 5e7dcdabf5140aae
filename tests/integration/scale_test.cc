// Issue 3: `firebreak ingest` and `firebreak worker` as separate processes on one
// queue. Workers scale to zero and back while ingress keeps ACKing (both backends);
// several ingress and worker processes share one Redis; Redis outages answer 503 and
// heal without a restart; Redis persistence too weak for queue.durability is reported.
#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <ostream>
#include <set>
#include <sstream>
#include <thread>

#include "harness.h"

namespace firebreak::testing {
namespace {

constexpr char kSecret[] = "scale-test-secret";

// The side effect: appends "<dedupe_key> <worker pid>" per handled job to argv[1],
// after sleeping argv[2] milliseconds (the handler is a child of its worker).
constexpr char kEffectBot[] = R"PY(
import fcntl, json, os, sys, time
path, delay = sys.argv[1], float(sys.argv[2]) / 1000
for line in sys.stdin:
    env = json.loads(line)
    if delay:
        time.sleep(delay)
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        f.write("%s %d\n" % (env["dedupe_key"], os.getppid()))
    print(json.dumps({"id": env["id"], "ok": True}), flush=True)
)PY";

std::string Key(const std::string& id) { return "events:" + id; }

class ScaleFixture : public ::testing::Test {
 protected:
  void StartStore(const std::string& backend, RedisServerOptions redis_options = {}) {
    backend_ = std::make_unique<QueueBackend>(backend, dir_, std::move(redis_options));
    ASSERT_TRUE(backend_->Start()) << backend_->Describe();
    dir_.Write("hmac.secret", kSecret);
    dir_.Write("bot.py", kEffectBot);
  }

  // A config whose ingress listens on `port`; every config of a test shares the queue.
  std::string Config(const std::string& name, uint16_t port, const std::string& queue_extra = "",
                     int handler_delay_ms = 0) {
    return dir_.Write(name + ".toml", R"(
[server]
listen = "127.0.0.1:)" + std::to_string(port) +
                                          R"("
threads = 2

)" + backend_->QueueToml(queue_extra) + R"(
[worker]
sidecar = "127.0.0.1:0"  # tests run in parallel: any free port
shutdown_grace = "5s"

[[sources]]
name = "events"
kind = "hmac"
path = "/hooks/events"
secret = { file = ")" + dir_.File("hmac.secret") +
                                          R"(" }
dedupe = "/id"
job = "work"

[[jobs]]
type = "work"
handler = { command = ["/usr/bin/python3", ")" +
                                          dir_.File("bot.py") + R"(", ")" +
                                          dir_.File("effects.txt") + R"(", ")" +
                                          std::to_string(handler_delay_ms) + R"("] }
concurrency = 2
timeout = "10s"
)");
  }

  // A `firebreak <role>` process with its own log, killed at the end of the test.
  FirebreakProcess& Process(const std::string& role, const std::string& config, uint16_t port) {
    std::string log = dir_.File(role + "-" + std::to_string(processes_.size()) + ".log");
    processes_.push_back(std::make_unique<FirebreakProcess>(role, config, log, port));
    return *processes_.back();
  }

  // Every process's log, for failure messages.
  std::string Logs() const {
    std::string out;
    for (const auto& p : processes_) out += "----\n" + p->Log();
    return out + "----\n" + backend_->Describe();
  }

  // The HTTP status of one signed event, or 0 when there was no answer.
  static int Send(uint16_t port, const std::string& id) {
    auto res = PostHmacSigned(port, "/hooks/events", kSecret, R"({"id":")" + id + "\"}");
    return res.ok() ? res->status : 0;
  }

  // How often each dedupe key was handled, and by which worker processes.
  std::map<std::string, int> Effects(std::set<int>* worker_pids = nullptr) const {
    std::map<std::string, int> counts;
    for (const auto& line : ReadLines(dir_.File("effects.txt"))) {
      std::istringstream in(line);
      std::string key;
      int pid = 0;
      in >> key >> pid;
      ++counts[key];
      if (worker_pids) worker_pids->insert(pid);
    }
    return counts;
  }

  bool AllHandled(const std::vector<std::string>& ids) const {
    auto effects = Effects();
    for (const auto& id : ids) {
      if (!effects.count(Key(id))) return false;
    }
    return true;
  }

  // ready + delayed + in flight of type "work", as the ingress's /metrics reports it.
  static double DepthMetric(uint16_t port) {
    std::string scrape = ScrapeMetrics(port);
    if (!HasMetric(scrape, "firebreak_queue_depth")) return -1;
    double depth = 0;
    for (const char* state : {"ready", "delayed", "in_flight"}) {
      depth += MetricValue(scrape, "firebreak_queue_depth",
                           {"job_type=\"work\"", std::string("state=\"") + state + "\""});
    }
    return depth;
  }

  // The firebreak_queue_depth samples of a scrape, for failure messages.
  static std::string DepthSamples(uint16_t port) {
    std::istringstream in(ScrapeMetrics(port));
    std::string line, out;
    while (std::getline(in, line)) {
      if (line.rfind("firebreak_queue_depth", 0) == 0) out += line + "\n";
    }
    return out;
  }

  TempDir dir_;
  std::unique_ptr<QueueBackend> backend_;
  std::vector<std::unique_ptr<FirebreakProcess>> processes_;  // after the store: stopped first
};

class ScaleTest : public ScaleFixture, public ::testing::WithParamInterface<std::string> {};

// Acceptance 4: ingress keeps ACKing with no worker at all; the depth grows by exactly
// what was sent, then drains when a worker comes back; every event is handled once.
TEST_P(ScaleTest, WorkerScaledToZeroAndBackWhileIngressKeepsAcking) {
  ASSERT_NO_FATAL_FAILURE(StartStore(GetParam()));
  uint16_t port = FreePort();
  std::string config = Config("shared", port);
  FirebreakProcess& ingest = Process("ingest", config, port);
  FirebreakProcess& worker = Process("worker", config, 0);
  ASSERT_TRUE(ingest.Start()) << Logs();
  ASSERT_TRUE(worker.Start()) << Logs();

  std::vector<std::string> sent;
  for (int i = 0; i < 10; ++i) {
    sent.push_back("warm-" + std::to_string(i));
    ASSERT_EQ(Send(port, sent.back()), 200) << Logs();
  }
  ASSERT_TRUE(WaitFor([&] { return AllHandled(sent); }, std::chrono::seconds(15))) << Logs();
  ASSERT_EQ(worker.Terminate(), 0) << Logs();

  // Scaled to zero: everything sent now waits in the queue.
  constexpr int kWhileDown = 60;
  for (int i = 0; i < kWhileDown; ++i) {
    sent.push_back("gap-" + std::to_string(i));
    ASSERT_EQ(Send(port, sent.back()), 200) << Logs();
    if (i == kWhileDown / 2 - 1) {
      EXPECT_EQ(QueuedJobs(config, "work"), kWhileDown / 2);
    }
  }
  EXPECT_EQ(QueuedJobs(config, "work"), kWhileDown);
  EXPECT_TRUE(WaitFor([&] { return DepthMetric(port) == kWhileDown; }, std::chrono::seconds(5)))
      << DepthSamples(port);
  EXPECT_EQ(Effects().size(), 10u) << "handled while no worker ran";

  // Scaled back up: the backlog drains.
  ASSERT_TRUE(worker.Start()) << Logs();
  EXPECT_TRUE(WaitFor([&] { return QueuedJobs(config, "work") == 0; }, std::chrono::seconds(30)))
      << "still queued: " << QueuedJobs(config, "work") << "\n"
      << Logs();
  EXPECT_TRUE(WaitFor([&] { return DepthMetric(port) == 0; }, std::chrono::seconds(5)))
      << DepthSamples(port);
  ASSERT_TRUE(WaitFor([&] { return AllHandled(sent); }, std::chrono::seconds(10))) << Logs();
  auto effects = Effects();
  for (const auto& id : sent) EXPECT_EQ(effects[Key(id)], 1) << id;
  EXPECT_EQ(effects.size(), sent.size());
  EXPECT_EQ(worker.Terminate(), 0) << Logs();
  EXPECT_EQ(ingest.Terminate(), 0) << Logs();
}

INSTANTIATE_TEST_SUITE_P(Backends, ScaleTest, ::testing::ValuesIn(AllBackends()), BackendName);

using RedisScaleTest = ScaleFixture;

// Two ingress and two worker processes on one Redis: traffic over both ingress
// ports, the same events sent to both at once; one job, one effect per dedupe key.
TEST_F(RedisScaleTest, TwoIngressesAndTwoWorkersHandleEachEventOnce) {
  ASSERT_NO_FATAL_FAILURE(StartStore("redis"));
  uint16_t ports[2] = {FreePort(), FreePort()};
  std::string configs[2] = {Config("ingress-a", ports[0], "", 10),
                            Config("ingress-b", ports[1], "", 10)};
  for (int i = 0; i < 2; ++i)
    ASSERT_TRUE(Process("ingest", configs[i], ports[i]).Start()) << Logs();
  FirebreakProcess& worker_a = Process("worker", configs[0], 0);
  FirebreakProcess& worker_b = Process("worker", configs[1], 0);
  ASSERT_TRUE(worker_a.Start()) << Logs();
  ASSERT_TRUE(worker_b.Start()) << Logs();

  // Client c sends its own half of the unique events to ingress c, and every
  // duplicate to its ingress at the same moment as the other client does.
  constexpr int kUnique = 300, kDuplicated = 50;
  std::vector<std::string> expected;
  for (int i = 0; i < kUnique; ++i) expected.push_back("u-" + std::to_string(i));
  for (int i = 0; i < kDuplicated; ++i) expected.push_back("d-" + std::to_string(i));
  int failures[2] = {0, 0};
  auto client = [&](int c) {
    for (int i = 0; i < kUnique / 2; ++i) {
      if (Send(ports[c], "u-" + std::to_string(2 * i + c)) != 200) ++failures[c];
      if (i % 3 == 0 && i / 3 < kDuplicated) {
        if (Send(ports[c], "d-" + std::to_string(i / 3)) != 200) ++failures[c];
      }
    }
  };
  std::thread a(client, 0), b(client, 1);
  a.join();
  b.join();
  EXPECT_EQ(failures[0] + failures[1], 0) << "requests not answered 200";

  ASSERT_TRUE(WaitFor([&] { return AllHandled(expected); }, std::chrono::seconds(40))) << Logs();
  std::this_thread::sleep_for(std::chrono::seconds(1));  // would a second effect follow?
  std::set<int> worker_pids;
  auto effects = Effects(&worker_pids);
  for (const auto& id : expected) EXPECT_EQ(effects[Key(id)], 1) << id;
  EXPECT_EQ(effects.size(), expected.size());
  EXPECT_EQ(worker_pids, (std::set<int>{worker_a.pid(), worker_b.pid()}))
      << "both workers take jobs";

  double accepted = 0, duplicates = 0;
  for (uint16_t port : ports) {
    std::string scrape = ScrapeMetrics(port);
    accepted += MetricValue(scrape, "firebreak_ingress_requests_total", {"outcome=\"accepted\""});
    duplicates += MetricValue(scrape, "firebreak_duplicates_total");
    EXPECT_GT(MetricValue(scrape, "firebreak_ingress_requests_total", {"outcome=\"accepted\""}), 0)
        << "port " << port << " took no traffic";
  }
  EXPECT_EQ(accepted, kUnique + kDuplicated);
  EXPECT_EQ(duplicates, kDuplicated);
  EXPECT_EQ(QueuedJobs(configs[0], "work"), 0);
  for (auto& p : processes_) EXPECT_EQ(p->Terminate(), 0) << Logs();
}

// Redis goes away under `firebreak run`: ingress refuses with 503 + Retry-After (never
// 200) and /readyz fails; Redis comes back on the same port and firebreak recovers
// by itself, ingress and worker alike.
TEST_F(RedisScaleTest, RedisOutageAnswers503AndRecoversWithoutRestart) {
  ASSERT_NO_FATAL_FAILURE(StartStore("redis"));
  uint16_t port = FreePort();
  FirebreakProcess& run = Process("run", Config("run", port), port);
  ASSERT_TRUE(run.Start()) << Logs();
  ASSERT_EQ(Send(port, "before"), 200) << Logs();
  ASSERT_TRUE(WaitFor([&] { return AllHandled({"before"}); }, std::chrono::seconds(10))) << Logs();
  EXPECT_EQ(GetStatus(port, "/readyz"), 200);

  // The first POST right after the crash is the one that finds the connection dead.
  auto post_while_down = [&](int i) {
    std::string body = R"({"id":"during-)" + std::to_string(i) + "\"}";
    auto res = PostHmacSigned(port, "/hooks/events", kSecret, body);
    ASSERT_TRUE(res.ok()) << "no answer while Redis is down: " << res.status().ToString();
    EXPECT_EQ(res->status, 503) << "event " << i << ": " << res->body;
    EXPECT_FALSE(res->Header("Retry-After").empty()) << "event " << i;
  };
  backend_->redis().Kill9();
  auto killed_at = std::chrono::steady_clock::now();
  ASSERT_NO_FATAL_FAILURE(post_while_down(0));
  EXPECT_TRUE(
      WaitFor([&] { return GetStatus(port, "/readyz") == 503; }, std::chrono::milliseconds(3500)))
      << "/readyz still " << GetStatus(port, "/readyz") << " with Redis down";
  auto ready_failed_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                             std::chrono::steady_clock::now() - killed_at)
                             .count();
  for (int i = 1; i < 6; ++i) {
    ASSERT_NO_FATAL_FAILURE(post_while_down(i));
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }

  ASSERT_TRUE(backend_->redis().Start()) << backend_->Describe();
  auto restarted_at = std::chrono::steady_clock::now();
  EXPECT_TRUE(WaitFor([&] { return GetStatus(port, "/readyz") == 200; }, std::chrono::seconds(10)))
      << Logs();
  EXPECT_TRUE(WaitFor([&] { return Send(port, "after") == 200; }, std::chrono::seconds(10)))
      << Logs();
  auto recovered_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::steady_clock::now() - restarted_at)
                          .count();
  EXPECT_TRUE(WaitFor([&] { return AllHandled({"after"}); }, std::chrono::seconds(15)))
      << "the worker did not resume\n"
      << Logs();
  std::printf("redis outage: /readyz 503 after %lld ms; POST 200 again %lld ms after restart\n",
              static_cast<long long>(ready_failed_ms), static_cast<long long>(recovered_ms));
  EXPECT_EQ(run.Terminate(), 0) << Logs();
}

// A process started before Redis (compose, a Redis host still booting) waits for it
// instead of exiting, then serves normally.
TEST_F(RedisScaleTest, ProcessStartedBeforeRedisWaitsForIt) {
  ASSERT_NO_FATAL_FAILURE(StartStore("redis"));
  uint16_t port = FreePort();
  const std::string config = Config("run", port);
  backend_->redis().Kill9();
  FirebreakProcess& run = Process("run", config, port);
  std::thread redis_later([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    backend_->redis().Start();
  });
  const bool started = run.Start(std::chrono::seconds(20));
  redis_later.join();
  ASSERT_TRUE(started) << Logs();
  EXPECT_NE(run.Log().find("queue store unreachable at start"), std::string::npos) << Logs();
  ASSERT_EQ(Send(port, "late"), 200) << Logs();
  EXPECT_TRUE(WaitFor([&] { return AllHandled({"late"}); }, std::chrono::seconds(10))) << Logs();
  EXPECT_EQ(run.Terminate(), 0) << Logs();
}

// Redis persistence against queue.durability: "fsync" needs AOF with appendfsync
// always, "process" needs AOF at least everysec (issue 3). Anything weaker is logged
// as a warning and shown by firebreak_queue_durability_degraded = 1.
struct PersistenceCase {
  std::string name;
  std::string appendfsync;  // RedisServerOptions: "no" = AOF off
  std::string durability;
  int degraded;
};

void PrintTo(const PersistenceCase& c, std::ostream* os) {
  *os << "appendfsync " << c.appendfsync << ", durability " << c.durability << ", degraded "
      << c.degraded;
}

std::string PersistenceCaseName(const ::testing::TestParamInfo<PersistenceCase>& info) {
  return info.param.name;
}

class DurabilityWarningTest : public ScaleFixture,
                              public ::testing::WithParamInterface<PersistenceCase> {};

TEST_P(DurabilityWarningTest, WeakRedisPersistenceIsWarnedAndExported) {
  const PersistenceCase& c = GetParam();
  RedisServerOptions options;
  options.appendfsync = c.appendfsync;
  ASSERT_NO_FATAL_FAILURE(StartStore("redis", options));
  uint16_t port = FreePort();
  FirebreakProcess& ingest =
      Process("ingest", Config("ingest", port, "durability = \"" + c.durability + "\"\n"), port);
  ASSERT_TRUE(ingest.Start()) << Logs();

  std::string scrape;
  EXPECT_TRUE(WaitFor(
      [&] {
        scrape = ScrapeMetrics(port);
        return HasMetric(scrape, "firebreak_queue_durability_degraded");
      },
      std::chrono::seconds(5)))
      << "no firebreak_queue_durability_degraded in /metrics:\n"
      << scrape;
  EXPECT_EQ(MetricValue(scrape, "firebreak_queue_durability_degraded"), c.degraded);

  std::string warning;
  for (const auto& line : ReadLines(dir_.File("ingest-0.log"))) {
    auto entry = nlohmann::json::parse(line, nullptr, false);
    if (!entry.is_object() || entry.value("level", "") != "warn") continue;
    if (entry.value("msg", "").find("durability") != std::string::npos) warning = line;
  }
  if (c.degraded) {
    EXPECT_FALSE(warning.empty()) << "no warning about durability in the log:\n" << ingest.Log();
  } else {
    EXPECT_TRUE(warning.empty()) << "unexpected warning: " << warning;
  }
  EXPECT_EQ(ingest.Terminate(), 0) << Logs();
}

INSTANTIATE_TEST_SUITE_P(
    Redis, DurabilityWarningTest,
    ::testing::Values(PersistenceCase{"AofOffWantsFsync", "no", "fsync", 1},
                      PersistenceCase{"EverysecWantsFsync", "everysec", "fsync", 1},
                      PersistenceCase{"AlwaysWantsFsync", "always", "fsync", 0},
                      PersistenceCase{"AofOffWantsProcess", "no", "process", 1},
                      PersistenceCase{"EverysecWantsProcess", "everysec", "process", 0}),
    PersistenceCaseName);

}  // namespace
}  // namespace firebreak::testing
