// Issue 17, [[schedules]]: a cron schedule with seconds, run by three worker processes on
// one queue (both backends), enqueues every tick exactly once; after all of them were
// down for 5 s, the missed ticks are handled by the schedule's policy ("last": only the
// newest runs, "all": each of them does).
#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <thread>

#include "harness.h"

namespace firebreak::testing {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

// Appends the tick (the job's dedupe key "schedule:<name>:<tick ms>") and the worker's
// pid to argv[1].
constexpr char kTickBot[] = R"PY(
import fcntl, json, os, sys
path = sys.argv[1]
for line in sys.stdin:
    env = json.loads(line)
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        f.write("%s %d\n" % (env["dedupe_key"].rsplit(":", 1)[1], os.getppid()))
    print(json.dumps({"id": env["id"], "ok": True}), flush=True)
)PY";

class ScheduleTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    backend_ = std::make_unique<QueueBackend>(GetParam(), dir_);
    ASSERT_TRUE(backend_->Start()) << backend_->Describe();
    dir_.Write("bot.py", kTickBot);
  }

  std::string Config(const std::string& missed) {
    return dir_.Write("firebreak.toml", R"(
[server]
listen = "127.0.0.1:)" + std::to_string(FreePort()) + R"("
)" + backend_->QueueToml() + R"(
[worker]
sidecar = "127.0.0.1:0"
shutdown_grace = "5s"

[[jobs]]
type = "tick"
handler = { command = ["/usr/bin/python3", ")" + dir_.File("bot.py") + R"(", ")" +
                                                 dir_.File("ticks.txt") + R"("] }
concurrency = 4

[[schedules]]
name = "every-second"
cron = "*/1 * * * * *"
time_zone = "Europe/Berlin"
job = "tick"
payload = { report = "heartbeat" }
missed = ")" + missed + R"("
catch_up = "1m"
)");
  }

  void StartWorkers(const std::string& config) {
    for (int i = 0; i < 3; ++i) {
      std::string log = dir_.File("worker-" + std::to_string(processes_.size() + stopped_.size()) +
                                  ".log");
      processes_.push_back(std::make_unique<FirebreakProcess>("worker", config, log, 0));
      ASSERT_TRUE(processes_.back()->Start()) << processes_.back()->Log();
    }
  }
  void StopWorkers() {
    for (auto& p : processes_) {
      EXPECT_EQ(p->Terminate(), 0) << p->Log();
      stopped_.push_back(std::move(p));
    }
    processes_.clear();
  }

  // How often each tick (epoch ms) ran, and by how many distinct workers in all.
  std::map<int64_t, int> Ticks(std::set<int>* pids = nullptr) const {
    std::map<int64_t, int> out;
    for (const std::string& line : ReadLines(dir_.File("ticks.txt"))) {
      std::istringstream in(line);
      int64_t tick = 0;
      int pid = 0;
      in >> tick >> pid;
      ++out[tick];
      if (pids) pids->insert(pid);
    }
    return out;
  }

  std::string Logs() const {
    std::string out;
    for (const auto* list : {&stopped_, &processes_}) {
      for (const auto& p : *list) out += "----\n" + p->Log().substr(0, 4000);
    }
    return out;
  }

  // Epoch ms: the stop of every worker began and ended (the workers stop one after the
  // other, and one still running ticks on: under ASan the three took over 2 s), and the
  // restart began.
  struct Outage {
    int64_t stop_began = 0;
    int64_t stop_ended = 0;
    int64_t restarted_at = 0;
  };
  // Runs 3 workers for `first_ms`, stops them all for 5 s, runs them again for 4 s.
  Outage RunWithOutage(const std::string& missed, int64_t first_ms) {
    const std::string config = Config(missed);
    StartWorkers(config);
    std::this_thread::sleep_for(milliseconds(first_ms));
    Outage outage;
    outage.stop_began = NowMs();
    StopWorkers();
    outage.stop_ended = NowMs();
    std::this_thread::sleep_for(seconds(5));
    outage.restarted_at = NowMs();
    StartWorkers(config);
    std::this_thread::sleep_for(seconds(4));
    StopWorkers();
    return outage;
  }

  TempDir dir_;
  std::unique_ptr<QueueBackend> backend_;
  std::vector<std::unique_ptr<FirebreakProcess>> processes_;  // running
  std::vector<std::unique_ptr<FirebreakProcess>> stopped_;    // for their logs
};

TEST_P(ScheduleTest, ThreeWorkersRunEveryTickOnceForAMinuteAndOnlyTheNewestMissedTick) {
  const int64_t started_at = NowMs();
  const Outage outage = RunWithOutage("last", 60'000);
  const int64_t stopped_at = outage.stop_began, restarted_at = outage.restarted_at;
  std::set<int> pids;
  std::map<int64_t, int> ticks = Ticks(&pids);
  ASSERT_FALSE(ticks.empty()) << Logs();
  for (const auto& [tick, runs] : ticks) {
    EXPECT_EQ(runs, 1) << "tick " << tick << "\n" << Logs();
    EXPECT_EQ(tick % 1000, 0) << "ticks are whole seconds";
  }
  // Every second of the first minute ran (the first workers started within 2 s).
  int64_t first_minute = 0;
  for (int64_t t = (started_at / 1000 + 3) * 1000; t <= stopped_at - 1000; t += 1000) {
    EXPECT_EQ(ticks.count(t), 1u) << "tick " << t << " missing\n" << Logs();
    ++first_minute;
  }
  EXPECT_GE(first_minute, 56);
  int64_t in_first_minute = 0;
  for (const auto& [tick, runs] : ticks) in_first_minute += tick <= stopped_at ? runs : 0;
  EXPECT_GE(in_first_minute, 58);
  EXPECT_LE(in_first_minute, 62);
  // The outage: nothing ran for the ticks before the restart's own second...
  for (int64_t t = (outage.stop_ended / 1000 + 2) * 1000; t < restarted_at - 1000; t += 1000) {
    EXPECT_EQ(ticks.count(t), 0u) << "missed tick " << t << " ran under \"last\"";
  }
  // ...the newest missed one (the restart's second) did, and the schedule went on.
  int64_t after_restart = 0;
  for (const auto& [tick, runs] : ticks) after_restart += tick >= restarted_at - 1000 ? 1 : 0;
  EXPECT_GE(after_restart, 3) << Logs();
  EXPECT_GE(pids.size(), 2u) << "the ticks should spread over the workers";
  std::cout << "ticks run: " << ticks.size() << " (first minute " << in_first_minute
            << "), workers " << pids.size() << "\n";
}

TEST_P(ScheduleTest, UnderPolicyAllEveryTickMissedInTheOutageRunsOnce) {
  const Outage outage = RunWithOutage("all", 6'000);
  const int64_t stopped_at = outage.stop_began, restarted_at = outage.restarted_at;
  std::map<int64_t, int> ticks = Ticks();
  ASSERT_FALSE(ticks.empty()) << Logs();
  for (const auto& [tick, runs] : ticks) EXPECT_EQ(runs, 1) << "tick " << tick;
  // No second is missing from the first tick to the last, the outage included.
  int64_t missed = 0;
  for (int64_t t = ticks.begin()->first; t <= ticks.rbegin()->first; t += 1000) {
    EXPECT_EQ(ticks.count(t), 1u) << "tick " << t << " missing\n" << Logs();
    if (t > stopped_at + 1000 && t < restarted_at - 1000) ++missed;
  }
  EXPECT_GE(missed, 3) << "the outage should have missed ticks";
}

INSTANTIATE_TEST_SUITE_P(Backends, ScheduleTest, ::testing::ValuesIn(AllBackends()), BackendName);

}  // namespace
}  // namespace firebreak::testing
