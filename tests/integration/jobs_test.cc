// Acceptance 3 and 5: retries with growing delays, dead-lettering with every error
// kept, replay, hard timeouts, Retry-After from a url handler, per-type concurrency.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <tuple>

#include "harness.h"

namespace firebreak::testing {
namespace {

constexpr char kSecret[] = "jobs-test-secret";

// Runs on every queue backend (the parameter): one test body, sqlite and redis.
class JobsTest : public ::testing::TestWithParam<std::string> {
 protected:
  // `job_toml` is the [[jobs]] table body for type "work".
  void Start(const std::string& job_toml) {
    backend_ = std::make_unique<QueueBackend>(GetParam(), dir_);
    ASSERT_TRUE(backend_->Start()) << backend_->Describe();
    port_ = FreePort();
    dir_.Write("hmac.secret", kSecret);
    config_ = dir_.Write("firebreak.toml", R"(
[server]
listen = "127.0.0.1:)" + std::to_string(port_) +
                                               R"("
threads = 1

)" + backend_->QueueToml() + R"(
[worker]
sidecar = "127.0.0.1:0"  # tests run in parallel: any free port
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
)" + job_toml);
    process_ = std::make_unique<FirebreakProcess>("run", config_, dir_.File("log.txt"), port_);
    ASSERT_TRUE(process_->Start()) << process_->Log();
  }

  void Send(const std::string& id, const std::string& extra = "") {
    auto res =
        PostHmacSigned(port_, "/hooks/test", kSecret, R"({"id":")" + id + "\"" + extra + "}");
    ASSERT_TRUE(res.ok()) << res.status().ToString();
    ASSERT_EQ(res->status, 200) << res->body;
  }

  std::string Scrape() {
    auto res = HttpCall({"GET",
                         "http://127.0.0.1:" + std::to_string(port_) + "/metrics",
                         {},
                         "",
                         std::chrono::seconds(5)});
    return res.ok() ? res->body : "";
  }

  std::string Script(const std::string& name, const std::string& code) {
    return dir_.Write(name, code);
  }

  std::string CommandHandler(const std::string& script) {
    return "handler = { command = [\"/usr/bin/python3\", \"" + script + "\", \"" + dir_.path() +
           "\"] }\n";
  }

  TempDir dir_;
  std::unique_ptr<QueueBackend> backend_;
  uint16_t port_ = 0;
  std::string config_;
  std::unique_ptr<FirebreakProcess> process_;  // declared last: stopped before the store
};

// Logs every attempt as {"id", "attempt", "t"} and fails per the job's payload.
constexpr char kRecordingBot[] = R"PY(
import json, sys, time, os
d = sys.argv[1]
for line in sys.stdin:
    env = json.loads(line)
    p = env["payload"]
    with open(os.path.join(d, "attempts.ndjson"), "a") as f:
        f.write(json.dumps({"id": p["id"], "attempt": env["attempt"], "t": time.time()}) + "\n")
    mode = p.get("mode", "ok")
    if mode == "flaky" and env["attempt"] <= 2:
        out = {"id": env["id"], "ok": False, "error": "flaky failure %d" % env["attempt"], "retry": True}
    elif mode == "fail":
        out = {"id": env["id"], "ok": False, "error": "boom %d" % env["attempt"], "retry": True}
    elif mode == "hang" and env["attempt"] == 1:
        time.sleep(3600)
        out = {"id": env["id"], "ok": True}
    elif mode == "fatal":
        out = {"id": env["id"], "ok": False, "error": "bad input", "retry": False}
    else:
        out = {"id": env["id"], "ok": True}
    print(json.dumps(out), flush=True)
)PY";

std::vector<nlohmann::json> Attempts(const TempDir& dir, const std::string& id) {
  std::vector<nlohmann::json> out;
  for (auto& line : ReadLines(dir.File("attempts.ndjson"))) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_object() && j["id"] == id) out.push_back(j);
  }
  return out;
}

TEST_P(JobsTest, FailsTwiceThenSucceedsInThreeAttemptsWithGrowingDelays) {
  ASSERT_NO_FATAL_FAILURE(Start(CommandHandler(Script("bot.py", kRecordingBot)) + R"(
concurrency = 2
timeout = "5s"
max_attempts = 5
backoff = { base = "300ms", factor = 3, max = "10s", jitter = "none" }
)"));
  Send("flaky-1", R"(,"mode":"flaky")");
  ASSERT_TRUE(
      WaitFor([&] { return Attempts(dir_, "flaky-1").size() >= 3; }, std::chrono::seconds(15)))
      << process_->Log();
  std::this_thread::sleep_for(std::chrono::seconds(2));  // would a 4th attempt come?
  auto attempts = Attempts(dir_, "flaky-1");
  ASSERT_EQ(attempts.size(), 3u) << process_->Log();
  for (int i = 0; i < 3; ++i) EXPECT_EQ(attempts[static_cast<size_t>(i)]["attempt"], i + 1);
  double d1 = attempts[1]["t"].get<double>() - attempts[0]["t"].get<double>();
  double d2 = attempts[2]["t"].get<double>() - attempts[1]["t"].get<double>();
  EXPECT_GE(d1, 0.3);
  EXPECT_GE(d2, 0.9);
  EXPECT_GT(d2, d1);
  std::string scrape = Scrape();
  EXPECT_EQ(MetricValue(scrape, "firebreak_jobs_total", {"outcome=\"retried\""}), 2);
  EXPECT_EQ(MetricValue(scrape, "firebreak_jobs_total", {"outcome=\"succeeded\""}), 1);
  std::string log = process_->Log();
  EXPECT_NE(log.find("\"msg\":\"job failed; retrying\""), std::string::npos);
  EXPECT_NE(log.find("\"retry_in_ms\":900"), std::string::npos);
}

TEST_P(JobsTest, AlwaysFailingJobIsDeadLetteredWithEveryErrorAndReplayBringsItBack) {
  ASSERT_NO_FATAL_FAILURE(Start(CommandHandler(Script("bot.py", kRecordingBot)) + R"(
concurrency = 2
timeout = "5s"
max_attempts = 3
backoff = { base = "100ms", factor = 2, max = "1s", jitter = "full" }
)"));
  Send("doomed", R"(,"mode":"fail")");
  Send("fatal", R"(,"mode":"fatal")");
  std::string dead_id;
  ASSERT_TRUE(WaitFor(
      [&] {
        auto list = RunFirebreak({"dlq", "list", "-c", config_});
        return list.out.find("boom 3") != std::string::npos &&
               list.out.find("bad input") != std::string::npos;
      },
      std::chrono::seconds(20)))
      << process_->Log();
  EXPECT_EQ(Attempts(dir_, "doomed").size(), 3u);
  EXPECT_EQ(Attempts(dir_, "fatal").size(), 1u);  // "don't retry": straight to the DLQ

  auto list = RunFirebreak({"dlq", "list", "-c", config_});
  std::string fatal_id;
  for (auto& line : ReadLines(dir_.Write("list.txt", list.out))) {
    if (line.find("boom 3") != std::string::npos) dead_id = line.substr(0, 26);
    if (line.find("bad input") != std::string::npos) fatal_id = line.substr(0, 26);
  }
  ASSERT_EQ(dead_id.size(), 26u) << list.out;
  auto show = RunFirebreak({"dlq", "show", dead_id, "-c", config_});
  ASSERT_EQ(show.exit_code, 0) << show.out;
  auto job = nlohmann::json::parse(show.out, nullptr, false);
  ASSERT_TRUE(job.is_object()) << show.out;
  EXPECT_EQ(job["state"], "dead");
  ASSERT_EQ(job["attempts"].size(), 3u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(job["attempts"][static_cast<size_t>(i)]["error"], "boom " + std::to_string(i + 1));
  }
  EXPECT_EQ(MetricValue(Scrape(), "firebreak_jobs_total", {"outcome=\"dead_lettered\""}), 2);

  auto replay = RunFirebreak({"dlq", "replay", dead_id, "-c", config_});
  EXPECT_EQ(replay.exit_code, 0) << replay.out;
  ASSERT_TRUE(
      WaitFor([&] { return Attempts(dir_, "doomed").size() >= 4; }, std::chrono::seconds(10)));
  EXPECT_EQ(Attempts(dir_, "doomed")[3]["attempt"], 1);  // replay starts over at attempt 1

  ASSERT_EQ(fatal_id.size(), 26u) << list.out;
  auto purge = RunFirebreak({"dlq", "purge", fatal_id, "-c", config_});
  EXPECT_EQ(purge.exit_code, 0) << purge.out;
  EXPECT_EQ(RunFirebreak({"dlq", "show", fatal_id, "-c", config_}).exit_code, 1);
  EXPECT_EQ(RunFirebreak({"dlq", "purge", fatal_id, "-c", config_}).exit_code, 1);
}

TEST_P(JobsTest, HandlerOverTimeoutIsKilledRetriedAndCountedAsTimedOut) {
  ASSERT_NO_FATAL_FAILURE(Start(CommandHandler(Script("bot.py", kRecordingBot)) + R"(
concurrency = 1
timeout = "1s"
max_attempts = 3
backoff = { base = "100ms", factor = 2, max = "1s", jitter = "none" }
)"));
  Send("slow", R"(,"mode":"hang")");
  ASSERT_TRUE(WaitFor([&] { return Attempts(dir_, "slow").size() >= 2; }, std::chrono::seconds(15)))
      << process_->Log();
  auto attempts = Attempts(dir_, "slow");
  EXPECT_GE(attempts[1]["t"].get<double>() - attempts[0]["t"].get<double>(), 1.0);
  ASSERT_TRUE(WaitFor(
      [&] { return MetricValue(Scrape(), "firebreak_jobs_total", {"outcome=\"succeeded\""}) == 1; },
      std::chrono::seconds(5)));
  std::string scrape = Scrape();
  EXPECT_EQ(MetricValue(scrape, "firebreak_jobs_total", {"outcome=\"timed_out\""}), 1);
  EXPECT_NE(process_->Log().find("\"outcome\":\"timed_out\""), std::string::npos);
}

TEST_P(JobsTest, UrlHandlerRetryAfterIsHonoured) {
  uint16_t handler_port = FreePort();
  std::string server = Script("server.py", R"PY(
import http.server, json, sys, time, os
d, port = sys.argv[1], int(sys.argv[2])
seen = {}
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        env = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        jid = env["id"]
        seen[jid] = seen.get(jid, 0) + 1
        with open(os.path.join(d, "attempts.ndjson"), "a") as f:
            f.write(json.dumps({"id": env["payload"]["id"], "attempt": env["attempt"], "t": time.time()}) + "\n")
        if seen[jid] == 1:
            self.send_response(429); self.send_header("Retry-After", "2")
        else:
            self.send_response(200)
        self.send_header("Content-Length", "0"); self.end_headers()
    def log_message(self, *a): pass
http.server.HTTPServer(("127.0.0.1", port), H).serve_forever()
)PY");
  pid_t server_pid = fork();
  if (server_pid == 0) {
    execl("/usr/bin/python3", "python3", server.c_str(), dir_.path().c_str(),
          std::to_string(handler_port).c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  struct KillOnExit {  // the handler server goes however the test ends
    pid_t pid;
    ~KillOnExit() {
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
    }
  } server_guard{server_pid};
  ASSERT_NO_FATAL_FAILURE(
      Start("handler = { url = \"http://127.0.0.1:" + std::to_string(handler_port) + "/jobs\" }\n" +
            R"(
concurrency = 2
timeout = "5s"
max_attempts = 5
backoff = { base = "100ms", factor = 2, max = "1s", jitter = "none" }
)"));
  Send("limited");
  ASSERT_TRUE(
      WaitFor([&] { return Attempts(dir_, "limited").size() >= 2; }, std::chrono::seconds(15)))
      << process_->Log();
  auto attempts = Attempts(dir_, "limited");
  EXPECT_GE(attempts[1]["t"].get<double>() - attempts[0]["t"].get<double>(), 2.0);
  EXPECT_NE(process_->Log().find("\"reason\":\"retry_after\""), std::string::npos);
}

TEST_P(JobsTest, PerTypeConcurrencyHolds) {
  std::string bot = Script("bot.py", R"PY(
import json, sys, time, os, fcntl
d = sys.argv[1]
for line in sys.stdin:
    env = json.loads(line)
    with open(os.path.join(d, "events.log"), "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX); f.write("start %.6f\n" % time.time())
    time.sleep(0.3)
    with open(os.path.join(d, "events.log"), "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX); f.write("end %.6f\n" % time.time())
    print(json.dumps({"id": env["id"], "ok": True}), flush=True)
)PY");
  ASSERT_NO_FATAL_FAILURE(Start(CommandHandler(bot) + R"(
concurrency = 3
timeout = "5s"
)"));
  for (int i = 0; i < 12; ++i) Send("c" + std::to_string(i));
  ASSERT_TRUE(WaitFor(
      [&] {
        return MetricValue(Scrape(), "firebreak_jobs_total", {"outcome=\"succeeded\""}) == 12;
      },
      std::chrono::seconds(20)))
      << process_->Log();
  std::vector<std::pair<double, int>> events;
  for (auto& line : ReadLines(dir_.File("events.log"))) {
    bool start = line.rfind("start", 0) == 0;
    // An end at the same instant as a start is counted first.
    events.emplace_back(std::stod(line.substr(line.find(' ') + 1)), start ? 1 : -1);
  }
  std::sort(events.begin(), events.end());
  int current = 0, peak = 0;
  for (auto& [t, delta] : events) {
    current += delta;
    peak = std::max(peak, current);
  }
  EXPECT_EQ(events.size(), 24u);
  EXPECT_LE(peak, 3);
  EXPECT_GE(peak, 2);  // and it did run jobs in parallel
}

TEST_P(JobsTest, OrderingKeyRunsJobsOfOneKeyInOrderAndOthersInParallel) {
  std::string bot = Script("bot.py", R"PY(
import json, sys, time, os, fcntl
d = sys.argv[1]
def note(what, env):
    with open(os.path.join(d, "order.log"), "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        f.write("%s %s %.6f\n" % (what, env["payload"]["id"], time.time()))
for line in sys.stdin:
    env = json.loads(line)
    note("start", env)
    time.sleep(0.1)
    note("end", env)
    print(json.dumps({"id": env["id"], "ok": True}), flush=True)
)PY");
  ASSERT_NO_FATAL_FAILURE(Start(CommandHandler(bot) + R"(
concurrency = 4
timeout = "5s"
ordering = "/channel"
)"));
  for (int i = 0; i < 5; ++i) {
    for (const char* channel : {"A", "B"}) {
      Send(std::string(channel) + std::to_string(i),
           std::string(R"(,"channel":")") + channel + "\"");
    }
  }
  ASSERT_TRUE(WaitFor(
      [&] {
        return MetricValue(Scrape(), "firebreak_jobs_total", {"outcome=\"succeeded\""}) == 10;
      },
      std::chrono::seconds(20)))
      << process_->Log();
  // Per channel: starts in send order, each after the previous one ended.
  std::map<char, std::vector<std::pair<std::string, double>>> events;
  std::vector<std::tuple<double, int>> overlap;
  for (auto& line : ReadLines(dir_.File("order.log"))) {
    std::istringstream in(line);
    std::string what, id;
    double t = 0;
    in >> what >> id >> t;
    events[id[0]].emplace_back(what + " " + id, t);
    overlap.emplace_back(t, what == "start" ? 1 : -1);
  }
  for (char channel : {'A', 'B'}) {
    std::vector<std::string> expected;
    for (int i = 0; i < 5; ++i) {
      expected.push_back("start " + std::string(1, channel) + std::to_string(i));
      expected.push_back("end " + std::string(1, channel) + std::to_string(i));
    }
    std::vector<std::string> got;
    for (auto& [what, t] : events[channel]) got.push_back(what);
    EXPECT_EQ(got, expected) << "channel " << channel;
  }
  std::sort(overlap.begin(), overlap.end());
  int current = 0, peak = 0;
  for (auto& [t, delta] : overlap) peak = std::max(peak, current += delta);
  EXPECT_EQ(peak, 2);  // one per channel at a time, the two channels in parallel
}

INSTANTIATE_TEST_SUITE_P(Backends, JobsTest, ::testing::ValuesIn(AllBackends()), BackendName);

}  // namespace
}  // namespace firebreak::testing
