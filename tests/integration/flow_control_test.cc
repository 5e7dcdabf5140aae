// Issue 17, flow control on both backends, with a backlog run by three worker processes
// on one queue. Per-key concurrency with fairness, from the handlers' own start and end
// lines: never more than concurrency_per_key jobs of a key at once, every key starts
// within the first second, keys progress evenly (round-robin, not one key's backlog
// first), and with concurrency_per_key = 1 each key runs in arrival order. Throttle:
// at most N starts of a key per period. global_concurrency: a cap over all workers.
// Priority:
// jobs from a priority-2 source wait at most a tenth of what the backlog's jobs wait.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>
#include <thread>

#include "harness.h"

namespace firebreak::testing {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr char kSecret[] = "flow-control-secret";

// Writes "start <chat> <n> <epoch ms> <dispatched ms>" when a job begins and
// "end <chat> <n> <ms> 0" when it is done, under a lock, so the file's order is the order
// things happened in. <dispatched ms> is when the worker started the attempt, by its own
// clock: the envelope's deadline less the type's timeout (the 30 s default). Unlike the
// handler's clock it has no handler start-up or pipe delay in it, which under the ASan
// binary on a loaded machine was measured at up to 430 ms.
constexpr char kKeyBot[] = R"PY(
import calendar, fcntl, json, sys, time
path = sys.argv[1]
def dispatched_ms(env):
    d = env["deadline"]  # "2026-11-27T20:00:30.214Z"
    secs = calendar.timegm(time.strptime(d[:19], "%Y-%m-%dT%H:%M:%S"))
    return secs * 1000 + int(d[20:23]) - 30000
def note(what, env):
    p = env["payload"]
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        f.write("%s %s %d %d %d\n" % (what, p["chat"], p["n"], int(time.time() * 1000),
                                     dispatched_ms(env) if what == "start" else 0))
for line in sys.stdin:
    env = json.loads(line)
    note("start", env)
    time.sleep(0.2 if env["payload"]["chat"].startswith("w") else 0.02)
    note("end", env)
    print(json.dumps({"id": env["id"], "ok": True}), flush=True)
)PY";

struct Event {
  bool start = false;
  std::string key;
  int n = 0;
  int64_t at_ms = 0;
  int64_t dispatched_ms = 0;  // start lines: when the worker started the attempt
};

class FlowControlTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    backend_ = std::make_unique<QueueBackend>(GetParam(), dir_);
    ASSERT_TRUE(backend_->Start()) << backend_->Describe();
    dir_.Write("bot.py", kKeyBot);
    dir_.Write("hmac.secret", kSecret);
  }

  // `job_keys`: more lines of the [[jobs]] table.
  std::string Config(const std::string& job_keys) {
    port_ = FreePort();
    return dir_.Write("firebreak.toml", R"(
[server]
listen = "127.0.0.1:)" + std::to_string(port_) + R"("
threads = 1
)" + backend_->QueueToml() + R"(
[worker]
sidecar = "127.0.0.1:0"
shutdown_grace = "5s"

[[sources]]
name = "chat"
kind = "hmac"
path = "/hooks/chat"
secret = { file = ")" + dir_.File("hmac.secret") + R"(" }
dedupe = "/id"
job = "reply"

[[sources]]
name = "vip"
kind = "hmac"
path = "/hooks/vip"
secret = { file = ")" + dir_.File("hmac.secret") + R"(" }
dedupe = "/id"
job = "reply"
priority = 2

[[jobs]]
type = "reply"
handler = { command = ["/usr/bin/python3", ")" + dir_.File("bot.py") + R"(", ")" +
                                                 dir_.File("events.txt") + R"("] }
concurrency = 8
)" + job_keys + "\n");
  }

  // Runs three workers and an ingest process, and warms the workers' handler processes
  // up (python starting 24 times on 2 cores takes about a second, which is not what the
  // fairness check measures). Then, with the type paused, stores `per_key` jobs of each
  // of `keys` keys, one key's jobs after the other's (the order that starves later keys
  // under plain FIFO), resumes, runs `meanwhile`, and waits until every job has ended
  // (bounded). Returns when it resumed (epoch ms).
  int64_t Run(const std::string& config, int keys, int per_key,
              const std::function<int()>& meanwhile = [] { return 0; }) {
    int64_t resumed_at = 0;
    RunWith(config, keys, per_key, meanwhile, resumed_at);
    return resumed_at;
  }
  void RunWith(const std::string& config, int keys, int per_key,
               const std::function<int()>& meanwhile, int64_t& resumed_at) {
    FirebreakProcess ingest("ingest", config, dir_.File("ingest.log"), port_);
    ASSERT_TRUE(ingest.Start()) << ingest.Log();
    std::vector<std::unique_ptr<FirebreakProcess>> workers;
    for (int i = 0; i < 3; ++i) {
      workers.push_back(std::make_unique<FirebreakProcess>(
          "worker", config, dir_.File("worker-" + std::to_string(i) + ".log"), 0));
      ASSERT_TRUE(workers.back()->Start()) << workers.back()->Log();
    }
    for (int w = 0; w < kWarmJobs; ++w) Send("w" + std::to_string(w), "w" + std::to_string(w), 0);
    ASSERT_TRUE(WaitFor([&] { return Ended(true) >= kWarmJobs; }, seconds(60)));

    ASSERT_EQ(RunFirebreak({"queue", "pause", "reply", "-c", config}).exit_code, 0);
    for (int k = 0; k < keys; ++k) {
      for (int n = 0; n < per_key; ++n) {
        Send("k" + std::to_string(k) + "-" + std::to_string(n), "c" + std::to_string(k), n);
      }
    }
    ASSERT_EQ(RunFirebreak({"queue", "resume", "reply", "-c", config}).exit_code, 0);
    resumed_at = NowMs();
    const int more = meanwhile();
    const bool done =
        WaitFor([&] { return Ended(false) >= keys * per_key + more; }, seconds(90));
    for (auto& w : workers) EXPECT_EQ(w->Terminate(), 0) << w->Log();
    EXPECT_EQ(ingest.Terminate(), 0) << ingest.Log();
    ASSERT_TRUE(done) << "only " << Ended(false) << " jobs ran";
  }

  void Send(const std::string& id, const std::string& chat, int n,
            const std::string& path = "/hooks/chat") {
    const std::string body =
        R"({"id":")" + id + R"(","chat":")" + chat + R"(","n":)" + std::to_string(n) + "}";
    Result<HttpResponse> res = PostHmacSigned(port_, path, kSecret, body);
    ASSERT_TRUE(res.ok()) << res.status().ToString();
    ASSERT_EQ(res->status, 200) << res->body;
  }

  // Jobs that ended: the warm-up ones, or the others.
  int Ended(bool warm) const {
    int ended = 0;
    for (const Event& e : Events(warm)) ended += e.start ? 0 : 1;
    return ended;
  }

  // The handlers' lines of the warm-up jobs (keys "w<n>") or of the others.
  std::vector<Event> Events(bool warm = false) const {
    std::vector<Event> out;
    for (const std::string& line : ReadLines(dir_.File("events.txt"))) {
      std::istringstream in(line);
      std::string what;
      Event e;
      if (!(in >> what >> e.key >> e.n >> e.at_ms >> e.dispatched_ms)) continue;  // a line being written
      e.start = what == "start";
      if ((e.key[0] == 'w') == warm) out.push_back(e);
    }
    return out;
  }

  // The most jobs of one key that were between their start and end lines at once.
  static int PeakPerKey(const std::vector<Event>& events) {
    std::map<std::string, int> running;
    int peak = 0;
    for (const Event& e : events) {
      int& n = running[e.key];
      n += e.start ? 1 : -1;
      peak = std::max(peak, n);
    }
    return peak;
  }

  static constexpr int kWarmJobs = 48;

  TempDir dir_;
  std::unique_ptr<QueueBackend> backend_;
  uint16_t port_ = 0;
};

TEST_P(FlowControlTest, TwoThousandJobsOverFiftyKeysOnThreeWorkersTwoPerKeyAndFair) {
  constexpr int kKeys = 50;
  constexpr int kPerKey = 40;
  const std::string config = Config("key = \"/chat\"\nconcurrency_per_key = 2");
  Run(config, kKeys, kPerKey);
  const std::vector<Event> events = Events();

  EXPECT_EQ(PeakPerKey(events), 2);

  // Every key started within the first second of the run.
  int64_t first_start = INT64_MAX;
  std::map<std::string, int64_t> key_first_start;
  for (const Event& e : events) {
    if (!e.start) continue;
    first_start = std::min(first_start, e.at_ms);
    if (!key_first_start.count(e.key)) key_first_start[e.key] = e.at_ms;
  }
  ASSERT_EQ(key_first_start.size(), static_cast<size_t>(kKeys));
  int64_t last_first_start = 0;
  for (const auto& [key, at] : key_first_start) last_first_start = std::max(last_first_start, at);
  std::string first_starts;
  for (const auto& [key, at] : key_first_start) {
    first_starts += " " + key + "+" + std::to_string(at - first_start);
  }
  EXPECT_LT(last_first_start - first_start, 1000) << "a key waited for its first job:"
                                                  << first_starts;

  // Round-robin: when half of all jobs had started, every key had started at least a
  // third of its share (20 each when perfectly even; a key served last under FIFO would
  // have none).
  std::map<std::string, int> started;
  int total_started = 0;
  for (const Event& e : events) {
    if (!e.start) continue;
    ++started[e.key];
    if (++total_started == kKeys * kPerKey / 2) break;
  }
  int fewest = kPerKey;
  for (int k = 0; k < kKeys; ++k) fewest = std::min(fewest, started["c" + std::to_string(k)]);
  EXPECT_GE(fewest, kPerKey / 2 / 3) << "some key fell behind the others";
  std::cout << "[ measured ] every key started within " << last_first_start - first_start
            << " ms; at half way the slowest key had started " << fewest << " of "
            << kPerKey / 2 << "\n";

  // Nothing lost, nothing run twice.
  std::map<std::pair<std::string, int>, int> ends;
  for (const Event& e : events) {
    if (!e.start) ++ends[{e.key, e.n}];
  }
  EXPECT_EQ(ends.size(), static_cast<size_t>(kKeys * kPerKey));
  for (const auto& [job, count] : ends) EXPECT_EQ(count, 1) << job.first << " " << job.second;
}

TEST_P(FlowControlTest, OnePerKeyRunsEachKeyInArrivalOrder) {
  constexpr int kKeys = 10;
  constexpr int kPerKey = 30;
  const std::string config = Config("key = \"/chat\"");
  Run(config, kKeys, kPerKey);
  const std::vector<Event> events = Events();
  EXPECT_EQ(PeakPerKey(events), 1);
  std::map<std::string, int> next;
  for (const Event& e : events) {
    if (!e.start) continue;
    EXPECT_EQ(e.n, next[e.key]) << "key " << e.key << " out of order";
    next[e.key] = e.n + 1;
  }
  EXPECT_EQ(next.size(), static_cast<size_t>(kKeys));
}

// global_concurrency = 5 over three workers of concurrency 8: never more than 5 jobs of
// the type run at once in all of them together (from the handlers' own lines), and the
// cap is used (the peak is 5, not less).
TEST_P(FlowControlTest, GlobalConcurrencyCapsTheTypeOverAllWorkers) {
  const std::string config = Config("global_concurrency = 5");
  Run(config, 10, 12);
  const std::vector<Event> events = Events();
  int running = 0;
  int peak = 0;
  int ends = 0;
  for (const Event& e : events) {
    running += e.start ? 1 : -1;
    peak = std::max(peak, running);
    ends += e.start ? 0 : 1;
  }
  EXPECT_EQ(ends, 120);
  EXPECT_EQ(peak, 5) << "jobs of the type running at once over 3 workers x 8 slots";
  std::cout << "[ measured ] peak in flight over 3 workers (24 slots): " << peak << "\n";
}

// Throttle: 3 starts per chat per second across the three workers, with room for 4 at
// once (so the throttle, not the line, is what holds them). 6 chats x 9 jobs: each chat
// runs in three waves a second apart, and no 4 starts of a chat fall within one second
// (by the worker's dispatch times, which follow the store's claims, late by at most a
// few hundred ms on a loaded machine).
TEST_P(FlowControlTest, ThrottleStartsAtMostThreeJobsOfAChatPerSecond) {
  constexpr int kKeys = 6;
  constexpr int kPerKey = 9;
  const std::string config =
      Config("key = \"/chat\"\nconcurrency_per_key = 4\nthrottle = { per_key = \"3/1s\" }");
  Run(config, kKeys, kPerKey);
  std::map<std::string, std::vector<int64_t>> starts;
  int ends = 0;
  for (const Event& e : Events()) {
    if (e.start) {
      starts[e.key].push_back(e.dispatched_ms);
    } else {
      ++ends;
    }
  }
  EXPECT_EQ(ends, kKeys * kPerKey);
  ASSERT_EQ(starts.size(), static_cast<size_t>(kKeys));
  int64_t tightest = INT64_MAX;  // the shortest span of 4 consecutive starts of a chat
  int64_t longest = 0;           // a chat's first to last start
  for (auto& [chat, at] : starts) {
    ASSERT_EQ(at.size(), static_cast<size_t>(kPerKey)) << chat;
    std::sort(at.begin(), at.end());
    for (size_t i = 0; i + 3 < at.size(); ++i) tightest = std::min(tightest, at[i + 3] - at[i]);
    longest = std::max(longest, at.back() - at.front());
  }
  std::cout << "[ measured ] 4 starts of one chat spanned at least " << tightest
            << " ms; a chat's 9 starts took at most " << longest << " ms\n";
  // The throttle counts claims; a dispatch follows its claim within milliseconds on a
  // quiet machine (998-1,001 ms measured here), but a make-test run of the ASan binary
  // beside other tests measured 799 ms: a claimed job waited ~200 ms for its dispatch.
  // Without the throttle the 4 would start together (concurrency_per_key = 4), and half
  // its window would give ~500 ms.
  EXPECT_GE(tightest, 650) << "more than 3 starts of a chat within a second";
  EXPECT_GE(longest, 1'850);  // three waves: the third a full 2 s after the first
  EXPECT_LT(longest, 3'500);  // ...and not held back longer than the throttle needs
}

// A backlog of 1,000 jobs from the ordinary source; 300 ms after it starts draining, 20
// jobs from the priority-2 source, one every 50 ms. Each job's wait: from when it was
// sent (backlog jobs: from the resume, which is when they could first run) to its dispatch.
TEST_P(FlowControlTest, PriorityJobsWaitATenthOfWhatTheBacklogWaits) {
  constexpr int kBacklog = 1000;
  constexpr int kUrgent = 20;
  const std::string config = Config("priority_step = \"1m\"");
  std::map<int, int64_t> sent_at;
  const int64_t resumed_at = Run(config, 1, kBacklog, [&] {
    std::this_thread::sleep_for(milliseconds(300));
    for (int n = 0; n < kUrgent; ++n) {
      sent_at[n] = NowMs();
      Send("vip-" + std::to_string(n), "vip", n, "/hooks/vip");
      std::this_thread::sleep_for(milliseconds(50));
    }
    return kUrgent;
  });
  double backlog_wait = 0;
  double urgent_wait = 0;
  int backlog_runs = 0;
  int urgent_runs = 0;
  for (const Event& e : Events()) {
    if (!e.start) continue;
    // Dispatch times: the handler's own start-up delay is not the queue's to answer for.
    if (e.key == "vip") {
      urgent_wait += static_cast<double>(e.dispatched_ms - sent_at[e.n]);
      ++urgent_runs;
    } else {
      backlog_wait += static_cast<double>(e.dispatched_ms - resumed_at);
      ++backlog_runs;
    }
  }
  ASSERT_EQ(backlog_runs, kBacklog);
  ASSERT_EQ(urgent_runs, kUrgent);
  backlog_wait /= kBacklog;
  urgent_wait /= kUrgent;
  std::cout << "[ measured ] mean wait: backlog " << backlog_wait << " ms, priority 2 "
            << urgent_wait << " ms\n";
  EXPECT_LE(urgent_wait, backlog_wait / 10);
}

// Debounce: 5 chats send a burst of 10 events each within 1 s (one every 100 ms per
// chat); with period 2s only each chat's last event runs, 2 s after it was sent, and the
// other 45 are recorded as cancelled, superseded by the next one.
TEST_P(FlowControlTest, DebounceRunsOnlyTheLastEventOfEachBurst) {
  constexpr int kChats = 5;
  constexpr int kBurst = 10;
  const std::string config = Config("debounce = { key = \"/chat\", period = \"2s\" }");
  std::map<std::string, int64_t> last_sent;
  Run(config, 0, 0, [&] {
    for (int n = 0; n < kBurst; ++n) {
      for (int c = 0; c < kChats; ++c) {
        const std::string chat = "d" + std::to_string(c);
        last_sent[chat] = NowMs();
        Send(chat + "-" + std::to_string(n), chat, n);
      }
      std::this_thread::sleep_for(milliseconds(100));
    }
    // Time for a wrongly kept earlier event to run too, before the workers stop.
    std::this_thread::sleep_for(milliseconds(3'000));
    return kChats;
  });
  std::map<std::string, std::vector<Event>> runs;
  for (const Event& e : Events()) {
    if (e.start) runs[e.key].push_back(e);
  }
  ASSERT_EQ(runs.size(), static_cast<size_t>(kChats));
  for (const auto& [chat, starts] : runs) {
    ASSERT_EQ(starts.size(), 1u) << chat << " ran " << starts.size() << " times";
    EXPECT_EQ(starts[0].n, kBurst - 1) << chat << " did not run its last event";
    EXPECT_GE(starts[0].at_ms - last_sent[chat], 1'900) << chat << " ran before its period";
    EXPECT_LT(starts[0].at_ms - last_sent[chat], 3'000) << chat;
  }
  CommandResult cancelled = RunFirebreak(
      {"jobs", "list", "--state", "cancelled", "--limit", "100", "--json", "-c", config});
  ASSERT_EQ(cancelled.exit_code, 0) << cancelled.out;
  nlohmann::json page = nlohmann::json::parse(cancelled.out, nullptr, false);
  ASSERT_TRUE(page.is_object()) << cancelled.out;
  EXPECT_EQ(page["items"].size(), static_cast<size_t>(kChats * (kBurst - 1)));
  for (const auto& job : page["items"]) {
    EXPECT_EQ(job.value("last_error", "").rfind("superseded by ", 0), 0u) << job.dump();
  }
}

INSTANTIATE_TEST_SUITE_P(Backends, FlowControlTest, ::testing::ValuesIn(AllBackends()),
                         BackendName);

}  // namespace
}  // namespace firebreak::testing
