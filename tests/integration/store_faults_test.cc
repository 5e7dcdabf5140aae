// Issue 13: a store that hangs or cannot commit shows on /readyz and costs a webhook at
// most queue.timeout; health endpoints and metrics never wait on it. Real faults only:
// a redis-server and a PostgreSQL cluster stopped with SIGSTOP, and a real filesystem
// (a tmpfs mounted in the test's dir) that fills up under the queue.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "harness.h"
#include "support/postgres_server.h"
#include "support/process.h"

namespace firebreak::testing {
namespace {

using std::chrono::milliseconds;
using Steady = std::chrono::steady_clock;

constexpr char kSecret[] = "faults-secret";
// The default queue.timeout and store.timeout, which these tests keep.
constexpr milliseconds kStoreTimeout{2'000};
// Scheduling slack on a loaded 2-core machine (and under ASan) on top of a timeout.
constexpr milliseconds kSlack{700};

// Appends every handled dedupe key to the file in argv[1].
constexpr char kRecordingBot[] = R"PY(
import json, sys
out = open(sys.argv[1], "a")
for line in sys.stdin:
    env = json.loads(line)
    out.write(env["dedupe_key"] + "\n"); out.flush()
    print(json.dumps({"id": env["id"], "ok": True}), flush=True)
)PY";

double MsSince(Steady::time_point start) {
  return std::chrono::duration<double, std::milli>(Steady::now() - start).count();
}

double Percentile(std::vector<double> values, double p) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  size_t index = static_cast<size_t>(p * static_cast<double>(values.size() - 1) + 0.5);
  return values[std::min(index, values.size() - 1)];
}

// GETs one path in a loop on its own keep-alive connection until stopped, recording
// each answer's latency and status (0: no answer within 5 s).
class Poller {
 public:
  Poller(uint16_t port, std::string path, milliseconds interval)
      : thread_([this, port, path = std::move(path), interval] { Run(port, path, interval); }) {}
  ~Poller() { Stop(); }
  void Stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  std::vector<double> Latencies() {
    std::lock_guard lock(mu_);
    return latencies_;
  }
  std::map<int, int> Statuses() {
    std::lock_guard lock(mu_);
    return statuses_;
  }

 private:
  void Run(uint16_t port, const std::string& path, milliseconds interval) {
    HttpConnection connection("127.0.0.1", port);
    while (!stop_) {
      const auto start = Steady::now();
      auto res = connection.Send("GET", path, {}, "", std::chrono::seconds(5));
      const double ms = MsSince(start);
      {
        std::lock_guard lock(mu_);
        latencies_.push_back(ms);
        ++statuses_[res.ok() ? res->status : 0];
      }
      std::this_thread::sleep_for(interval);
    }
  }

  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::vector<double> latencies_;  // guarded by mu_
  std::map<int, int> statuses_;    // guarded by mu_
  std::thread thread_;             // last: starts after the fields it uses
};

// Many pollers of one endpoint, summed up.
struct PollerGroup {
  PollerGroup(int n, uint16_t port, const std::string& path, milliseconds interval) {
    for (int i = 0; i < n; ++i) pollers.push_back(std::make_unique<Poller>(port, path, interval));
  }
  void Stop() {
    for (auto& p : pollers) p->Stop();
  }
  std::vector<double> Latencies() {
    std::vector<double> all;
    for (auto& p : pollers) {
      auto l = p->Latencies();
      all.insert(all.end(), l.begin(), l.end());
    }
    return all;
  }
  int Count(int status) {
    int n = 0;
    for (auto& p : pollers) n += p->Statuses()[status];
    return n;
  }
  std::vector<std::unique_ptr<Poller>> pollers;
};

// One Slack-signed event per call, on a keep-alive connection; what came back.
struct Delivery {
  int status = 0;  // 0: no answer
  double ms = 0;
  bool retry_after = false;
};

class Sender {
 public:
  explicit Sender(uint16_t port, std::string padding = "")
      : connection_("127.0.0.1", port), padding_(std::move(padding)) {}
  Delivery Send(const std::string& event_id) {
    const std::string body = R"({"type":"event_callback","event_id":")" + event_id +
                             R"(","event":{"type":"message","text":")" + padding_ + R"("}})";
    const auto start = Steady::now();
    auto res = connection_.Send("POST", "/hooks/slack",
                                SlackHeaders(kSecret, body, NowSeconds(), "application/json"),
                                body, std::chrono::seconds(10));
    Delivery d;
    d.ms = MsSince(start);
    if (res.ok()) {
      d.status = res->status;
      d.retry_after = !res->Header("Retry-After").empty();
    }
    return d;
  }

 private:
  HttpConnection connection_;
  std::string padding_;
};

// `firebreak run` with the recording handler; `queue_toml` and `extra_toml` complete it.
std::string WriteConfig(const TempDir& dir, uint16_t port, const std::string& queue_toml,
                        const std::string& extra_toml) {
  dir.Write("slack.secret", kSecret);
  const std::string bot = dir.Write("bot.py", kRecordingBot);
  return dir.Write("firebreak.toml", "[server]\nlisten = \"127.0.0.1:" + std::to_string(port) +
                                         "\"\n\n" + queue_toml + "\n" + extra_toml + R"(
[telemetry]
log_level = "info"

[[sources]]
name = "slack"
kind = "slack"
path = "/hooks/slack"
secret = { file = ")" + dir.File("slack.secret") +
                                         R"(" }
job = "slack.event"

[[jobs]]
type = "slack.event"
handler = { command = ["/usr/bin/python3", ")" + bot +
                                         R"(", ")" + dir.File("handled.txt") + R"("] }
concurrency = 4
timeout = "5s"
)");
}

// How many of `acked` are not in the handler's file once it has had `wait` to catch up.
size_t Unhandled(const TempDir& dir, const std::set<std::string>& acked,
                 std::chrono::seconds wait = std::chrono::seconds(30)) {
  std::set<std::string> handled;
  auto missing = [&] {
    for (auto& key : ReadLines(dir.File("handled.txt"))) handled.insert(key);
    size_t n = 0;
    for (auto& key : acked) n += handled.count(key) ? 0 : 1;
    return n;
  };
  WaitFor([&] { return missing() == 0; }, wait);
  return missing();
}

size_t CountLines(const std::string& log, const std::string& needle) {
  size_t n = 0;
  for (size_t at = log.find(needle); at != std::string::npos; at = log.find(needle, at + 1)) ++n;
  return n;
}

// Acceptance 1: Redis stopped (SIGSTOP, not killed) under 10 readiness probes and 4
// scrapers. /healthz stays fast, every webhook gets an answer within queue.timeout (503
// + Retry-After while the store hangs), /readyz says why, and nothing acked is lost.
TEST(StoreFaultsTest, AHungRedisFreezesNeitherHealthNorWebhooks) {
  TempDir dir;
  QueueBackend backend("redis", dir);
  ASSERT_TRUE(backend.Start()) << backend.Describe();
  const uint16_t port = FreePort();
  const std::string config =
      WriteConfig(dir, port, backend.QueueToml(), "[worker]\nsidecar = \"127.0.0.1:0\"\n");
  FirebreakProcess firebreak("run", config, dir.File("log.txt"), port);
  ASSERT_TRUE(firebreak.Start()) << firebreak.Log();

  std::set<std::string> acked;
  Sender warmup(port);
  for (int i = 0; i < 20; ++i) {
    std::string id = "EvWarm" + std::to_string(i);
    ASSERT_EQ(warmup.Send(id).status, 200);
    acked.insert("slack:" + id);
  }

  PollerGroup readiness(10, port, "/readyz", milliseconds(50));
  PollerGroup scrapers(4, port, "/metrics", milliseconds(200));
  PollerGroup liveness(1, port, "/healthz", milliseconds(20));
  std::this_thread::sleep_for(milliseconds(500));

  ASSERT_EQ(kill(backend.redis().pid(), SIGSTOP), 0);
  const auto hang_started = Steady::now();
  std::mutex mu;
  std::vector<Delivery> during;
  std::vector<std::thread> senders;
  for (int s = 0; s < 3; ++s) {
    senders.emplace_back([&, s] {
      Sender sender(port);
      for (int i = 0; Steady::now() - hang_started < std::chrono::seconds(6); ++i) {
        const std::string id = "EvHang" + std::to_string(s) + "-" + std::to_string(i);
        Delivery d = sender.Send(id);
        std::lock_guard lock(mu);
        during.push_back(d);
        if (d.status == 200) acked.insert("slack:" + id);
      }
    });
  }
  // Mid-hang: /readyz names the store, /metrics answers and says the queue is not writable.
  std::this_thread::sleep_for(std::chrono::seconds(3));
  auto ready = HttpCall({"GET", "http://127.0.0.1:" + std::to_string(port) + "/readyz", {}, "",
                         std::chrono::seconds(5)});
  ASSERT_TRUE(ready.ok());
  EXPECT_EQ(ready->status, 503) << ready->body;
  EXPECT_NE(ready->body.find("redis"), std::string::npos) << ready->body;
  const auto scrape_started = Steady::now();
  const std::string scrape = ScrapeMetrics(port);
  EXPECT_LT(MsSince(scrape_started), 1000.0);
  EXPECT_EQ(MetricValue(scrape, "firebreak_queue_writable"), 0) << scrape;
  for (auto& t : senders) t.join();

  ASSERT_EQ(kill(backend.redis().pid(), SIGCONT), 0);
  EXPECT_TRUE(WaitFor([&] { return GetStatus(port, "/readyz") == 200; }, std::chrono::seconds(10)))
      << firebreak.Log();
  readiness.Stop();
  scrapers.Stop();
  liveness.Stop();
  for (int i = 0; i < 20; ++i) {
    std::string id = "EvAfter" + std::to_string(i);
    EXPECT_EQ(warmup.Send(id).status, 200);
    acked.insert("slack:" + id);
  }

  const std::vector<double> health = liveness.Latencies();
  std::vector<double> webhook_ms;
  int refused = 0, unanswered = 0, without_retry_after = 0, other = 0;
  for (const Delivery& d : during) {
    webhook_ms.push_back(d.ms);
    if (d.status == 0) ++unanswered;
    if (d.status == 503) {
      ++refused;
      if (!d.retry_after) ++without_retry_after;
    }
    if (d.status != 0 && d.status != 200 && d.status != 503) ++other;
  }
  std::printf(
      "store-faults[redis hung]: /healthz %zu samples p50 %.2f p99 %.2f max %.2f ms; /readyz "
      "%zu answers (503: %d) p99 %.2f ms; /metrics p99 %.2f max %.2f ms; webhooks %zu (503: "
      "%d) max %.0f ms\n",
      health.size(), Percentile(health, 0.5), Percentile(health, 0.99), Percentile(health, 1),
      readiness.Latencies().size(), readiness.Count(503), Percentile(readiness.Latencies(), 0.99),
      Percentile(scrapers.Latencies(), 0.99), Percentile(scrapers.Latencies(), 1), during.size(),
      refused, Percentile(webhook_ms, 1));

  EXPECT_GT(health.size(), 100u);
  EXPECT_LT(Percentile(health, 0.99), 10.0 * LatencyScale());
  EXPECT_EQ(liveness.Count(0) + readiness.Count(0) + scrapers.Count(0), 0) << "unanswered probes";
  EXPECT_GT(readiness.Count(503), 0);
  EXPECT_LT(Percentile(scrapers.Latencies(), 1), 1500.0);
  EXPECT_GT(refused, 0);
  EXPECT_EQ(unanswered, 0);
  EXPECT_EQ(other, 0);
  EXPECT_EQ(without_retry_after, 0);
  EXPECT_LE(Percentile(webhook_ms, 1), static_cast<double>((kStoreTimeout + kSlack).count()));
  EXPECT_EQ(Unhandled(dir, acked), 0u) << firebreak.Log();
  EXPECT_EQ(firebreak.Terminate(), 0);
}

// Acceptance 1, the state store: PostgreSQL stopped (postmaster and backends) while
// handlers use it through the sidecar. State calls answer 503 within store.timeout,
// sessions (the SQLite file) and webhooks go on, health stays fast, and state works
// again once PostgreSQL does.
TEST(StoreFaultsTest, AHungPostgresStateStoreFailsFastAndNothingElseWaits) {
  ASSERT_FALSE(PostgresBinDir().empty()) << "PostgreSQL is not installed";
  TempDir dir;
  PostgresServer postgres;
  ASSERT_TRUE(postgres.Start()) << postgres.Log();
  const uint16_t port = FreePort();
  const uint16_t sidecar = FreePort();
  const std::string config =
      WriteConfig(dir, port,
                  "[queue]\nbackend = \"sqlite\"\npath = \"" + dir.File("queue.db") + "\"\n",
                  "[worker]\nsidecar = \"127.0.0.1:" + std::to_string(sidecar) +
                      "\"\n\n[store]\nstate = \"postgres\"\nstate_url = \"" + postgres.Url() +
                      "\"\n");
  FirebreakProcess firebreak("run", config, dir.File("log.txt"), port);
  ASSERT_TRUE(firebreak.Start()) << firebreak.Log();
  HttpConnection handler("127.0.0.1", sidecar);
  auto put = handler.Send("PUT", "/v1/state/counter", {}, "1");
  ASSERT_TRUE(put.ok());
  ASSERT_EQ(put->status, 201) << put->body;

  PollerGroup sidecar_health(10, sidecar, "/healthz", milliseconds(50));
  PollerGroup sidecar_scrapers(4, sidecar, "/metrics", milliseconds(200));
  PollerGroup ingress_health(1, port, "/healthz", milliseconds(20));
  std::this_thread::sleep_for(milliseconds(300));

  ASSERT_GE(SignalProcessTree(postgres.pid(), SIGSTOP), 2);  // postmaster + our backend
  struct ContinueAtExit {
    pid_t pid;
    ~ContinueAtExit() { SignalProcessTree(pid, SIGCONT); }
  } continue_at_exit{postgres.pid()};
  const auto hang_started = Steady::now();
  std::mutex mu;
  std::vector<Delivery> state_calls;
  std::vector<std::thread> callers;
  for (int c = 0; c < 6; ++c) {
    callers.emplace_back([&] {
      HttpConnection connection("127.0.0.1", sidecar);
      while (Steady::now() - hang_started < std::chrono::seconds(5)) {
        const auto start = Steady::now();
        auto res = connection.Send("GET", "/v1/state/counter", {}, "", std::chrono::seconds(10));
        Delivery d{res.ok() ? res->status : 0, MsSince(start),
                   res.ok() && !res->Header("Retry-After").empty()};
        std::lock_guard lock(mu);
        state_calls.push_back(d);
      }
    });
  }
  // Meanwhile sessions and webhooks are not held up by the hung state store.
  std::vector<double> session_ms;
  std::set<std::string> acked;
  Sender webhooks(port);
  for (int i = 0; i < 10; ++i) {
    const auto start = Steady::now();
    auto res = handler.Send("PUT", "/v1/sessions/chat-" + std::to_string(i), {}, "hi");
    session_ms.push_back(MsSince(start));
    ASSERT_TRUE(res.ok());
    EXPECT_EQ(res->status, 201) << res->body;
    const std::string id = "EvPg" + std::to_string(i);
    EXPECT_EQ(webhooks.Send(id).status, 200);
    acked.insert("slack:" + id);
    std::this_thread::sleep_for(milliseconds(200));
  }
  for (auto& t : callers) t.join();

  SignalProcessTree(postgres.pid(), SIGCONT);
  EXPECT_TRUE(WaitFor(
      [&] {
        auto res = handler.Send("GET", "/v1/state/counter", {}, "", std::chrono::seconds(5));
        return res.ok() && res->status == 200 && res->body == "1";
      },
      std::chrono::seconds(15)))
      << firebreak.Log();
  sidecar_health.Stop();
  sidecar_scrapers.Stop();
  ingress_health.Stop();

  std::vector<double> state_ms;
  int unavailable = 0, other = 0, without_retry_after = 0;
  for (const Delivery& d : state_calls) {
    state_ms.push_back(d.ms);
    if (d.status == 503) {
      ++unavailable;
      if (!d.retry_after) ++without_retry_after;
    } else if (d.status != 200) {
      ++other;
    }
  }
  std::printf(
      "store-faults[postgres hung]: state calls %zu (503: %d) max %.0f ms; sessions max %.0f "
      "ms; sidecar /healthz p99 %.2f ms, /metrics max %.0f ms; ingress /healthz p99 %.2f ms\n",
      state_calls.size(), unavailable, Percentile(state_ms, 1), Percentile(session_ms, 1),
      Percentile(sidecar_health.Latencies(), 0.99), Percentile(sidecar_scrapers.Latencies(), 1),
      Percentile(ingress_health.Latencies(), 0.99));

  EXPECT_GT(unavailable, 0);
  EXPECT_EQ(other, 0);
  EXPECT_EQ(without_retry_after, 0);
  EXPECT_LE(Percentile(state_ms, 1), static_cast<double>((kStoreTimeout + kSlack).count()));
  EXPECT_LT(Percentile(session_ms, 1), 1000.0);
  EXPECT_LT(Percentile(sidecar_health.Latencies(), 0.99), 10.0 * LatencyScale());
  EXPECT_LT(Percentile(ingress_health.Latencies(), 0.99), 10.0 * LatencyScale());
  EXPECT_LT(Percentile(sidecar_scrapers.Latencies(), 1), 1500.0);
  EXPECT_EQ(sidecar_health.Count(0) + sidecar_scrapers.Count(0) + ingress_health.Count(0), 0);
  EXPECT_EQ(Unhandled(dir, acked), 0u) << firebreak.Log();
  EXPECT_EQ(firebreak.Terminate(), 0);
}

// A tmpfs of its own under the test's dir, unmounted (lazily) at the end.
class SmallDisk {
 public:
  explicit SmallDisk(std::string path) : path_(std::move(path)) {
    mkdir(path_.c_str(), 0755);
    if (mount("tmpfs", path_.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, "size=16m,mode=0755") == 0) {
      mounted_ = true;
    } else {
      error_ = std::strerror(errno);
    }
  }
  ~SmallDisk() {
    if (mounted_) umount2(path_.c_str(), MNT_DETACH);
  }
  bool mounted() const { return mounted_; }
  const std::string& error() const { return error_; }
  const std::string& path() const { return path_; }

  // Writes a file until the disk is full; returns its size.
  size_t Fill() {
    std::FILE* f = std::fopen((path_ + "/filler").c_str(), "w");
    if (f == nullptr) return 0;
    std::setvbuf(f, nullptr, _IONBF, 0);
    std::vector<char> chunk(64 * 1024, 'x');
    size_t written = 0;
    for (size_t size = chunk.size(); size >= 512; size /= 2) {
      while (std::fwrite(chunk.data(), 1, size, f) == size) written += size;
      std::clearerr(f);
    }
    std::fclose(f);
    return written;
  }
  void Free() { std::remove((path_ + "/filler").c_str()); }

 private:
  std::string path_;
  bool mounted_ = false;
  std::string error_;
};

class DiskFullTest : public ::testing::TestWithParam<std::string> {};

// Acceptance 2: the queue's disk fills up (SQLite's file, or Redis' AOF with appendfsync
// everysec, which then refuses writes with MISCONF). Webhooks get 503, /readyz says why
// and 200 again once space is back, without a restart; every acked event is handled;
// the flood of identical failures is a few log lines.
TEST_P(DiskFullTest, ReadyzFollowsTheDiskAndNoAckedEventIsLost) {
  if (geteuid() != 0) GTEST_SKIP() << "mounting a tmpfs needs root";
  TempDir dir;
  SmallDisk disk(dir.File("disk"));
  ASSERT_TRUE(disk.mounted()) << "mount tmpfs on " << disk.path() << ": " << disk.error();
  RedisServerOptions redis_options;
  redis_options.appendfsync = "everysec";
  redis_options.extra_args = {"--dir", disk.path()};
  QueueBackend backend(GetParam(), dir, redis_options);
  ASSERT_TRUE(backend.Start()) << backend.Describe();
  const std::string queue_toml =
      backend.is_redis()
          ? backend.QueueToml("durability = \"process\"\n")
          : "[queue]\nbackend = \"sqlite\"\npath = \"" + disk.path() + "/queue.db\"\n";
  const uint16_t port = FreePort();
  const std::string config =
      WriteConfig(dir, port, queue_toml, "[worker]\nsidecar = \"127.0.0.1:0\"\n");
  FirebreakProcess firebreak("run", config, dir.File("log.txt"), port);
  ASSERT_TRUE(firebreak.Start()) << firebreak.Log();

  std::set<std::string> acked;
  Sender sender(port, std::string(2000, 'p'));
  int next = 0;
  auto send = [&] {
    const std::string id = "EvDisk" + std::to_string(next++);
    Delivery d = sender.Send(id);
    if (d.status == 200) acked.insert("slack:" + id);
    return d;
  };
  for (int i = 0; i < 20; ++i) ASSERT_EQ(send().status, 200);

  ASSERT_GT(disk.Fill(), 0u);
  int refused = 0, without_retry_after = 0;
  const auto filled = Steady::now();
  while (refused == 0 && Steady::now() - filled < std::chrono::seconds(30) && next < 3000) {
    Delivery d = send();
    ASSERT_TRUE(d.status == 200 || d.status == 503) << d.status;
    if (d.status == 503) ++refused;
  }
  ASSERT_GT(refused, 0) << "the full disk never showed: " << firebreak.Log();
  std::string readyz_body;
  EXPECT_TRUE(WaitFor(
      [&] {
        auto res = HttpCall({"GET", "http://127.0.0.1:" + std::to_string(port) + "/readyz", {}, "",
                             std::chrono::seconds(5)});
        if (!res.ok() || res->status != 503) return false;
        readyz_body = res->body;
        return true;
      },
      std::chrono::seconds(5)));
  const bool names_cause = readyz_body.find("full") != std::string::npos ||
                           readyz_body.find("No space") != std::string::npos ||
                           readyz_body.find("MISCONF") != std::string::npos;
  EXPECT_TRUE(names_cause) << readyz_body;
  // A platform keeps retrying meanwhile: a burst of refusals.
  for (int i = 0; i < 200; ++i) {
    Delivery d = send();
    if (d.status == 503) {
      ++refused;
      if (!d.retry_after) ++without_retry_after;
    }
  }

  disk.Free();
  EXPECT_TRUE(WaitFor([&] { return GetStatus(port, "/readyz") == 200; }, std::chrono::seconds(10)))
      << firebreak.Log();
  for (int i = 0; i < 20; ++i) EXPECT_EQ(send().status, 200);

  std::printf("store-faults[disk full, %s]: sent %d, acked %zu, refused %d; readyz said: %s\n",
              GetParam().c_str(), next, acked.size(), refused, readyz_body.c_str());
  EXPECT_EQ(without_retry_after, 0);
  EXPECT_EQ(Unhandled(dir, acked), 0u) << firebreak.Log();
  EXPECT_EQ(firebreak.Terminate(), 0);
  // Hundreds of identical failures, a few lines (log::WriteLimited).
  const std::string log = firebreak.Log();
  EXPECT_LE(CountLines(log, "\"webhook not stored: store unavailable\""), 4u);
  EXPECT_LE(CountLines(log, "\"queue write batch failed; nothing of it was stored\""), 4u);
}

INSTANTIATE_TEST_SUITE_P(Backends, DiskFullTest, ::testing::ValuesIn(AllBackends()), BackendName);

}  // namespace
}  // namespace firebreak::testing
