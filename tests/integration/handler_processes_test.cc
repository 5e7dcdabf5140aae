// Issue 13 (items 3 and 5, handler part), against the real binary: command handlers
// that fork, ignore SIGTERM and hang, exit at once, or write garbage leave no process
// behind — not after their jobs, not after firebreak's SIGTERM — while a good handler
// type next to them keeps succeeding.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/types.h>

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "harness.h"

namespace firebreak::testing {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr char kSecret[] = "handler-processes-secret";

// Each handler is started with the test's directory as its last argument and starts
// its children as <dir>/bin/sleep (a symlink to /bin/sleep): every process of this
// test has the directory in its command line.

// Answers every job, and notes it.
constexpr char kGoodBot[] = R"PY(
import json, os, sys
d = sys.argv[1]
for line in sys.stdin:
    env = json.loads(line)
    with open(os.path.join(d, "good.log"), "a") as f:
        f.write(env["payload"]["id"] + "\n")
    print(json.dumps({"id": env["id"], "ok": True}), flush=True)
)PY";

// Starts two long sleeps per job (sharing its stdout and stderr), then hangs past its
// timeout.
constexpr char kForkingBot[] = R"PY(
import subprocess, sys, time
d = sys.argv[1]
for line in sys.stdin:
    for _ in range(2):
        subprocess.Popen([d + "/bin/sleep", "3600"])
    time.sleep(3600)
)PY";

// Ignores SIGTERM and its stdin closing, keeps a child, and hangs on "hang" jobs.
constexpr char kStubbornBot[] = R"PY(
import json, signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
d = sys.argv[1]
subprocess.Popen([d + "/bin/sleep", "3600"], stdin=subprocess.DEVNULL)
for line in sys.stdin:
    env = json.loads(line)
    if env["payload"].get("mode") == "hang":
        time.sleep(3600)
    print(json.dumps({"id": env["id"], "ok": True}), flush=True)
time.sleep(3600)
)PY";

// Leaves a child holding its stdout and exits at once.
constexpr char kExitingBot[] = R"SH(
read line
"$1/bin/sleep" 3600 &
exit 3
)SH";

// A child, a 1 MiB stderr line, then garbage instead of an answer.
constexpr char kGarbageBot[] = R"PY(
import subprocess, sys
d = sys.argv[1]
subprocess.Popen([d + "/bin/sleep", "3600"])
for line in sys.stdin:
    sys.stderr.write("G" * (1024 * 1024) + "\n")
    sys.stderr.flush()
    print("this is not json", flush=True)
)PY";

struct ProcessInfo {
  pid_t pid = 0;
  pid_t ppid = 0;
  pid_t pgid = 0;
  std::string cmdline;
};

// Live (not zombie) processes whose command line contains `marker`.
std::vector<ProcessInfo> ProcessesMentioning(const std::string& marker) {
  std::vector<ProcessInfo> found;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/proc", ec)) {
    const std::string name = entry.path().filename().string();
    if (name.empty() || !std::all_of(name.begin(), name.end(), ::isdigit)) continue;
    std::string cmdline = ReadFile(entry.path().string() + "/cmdline");
    std::replace(cmdline.begin(), cmdline.end(), '\0', ' ');
    if (cmdline.find(marker) == std::string::npos) continue;
    // /proc/<pid>/stat: "pid (comm) state ppid pgrp ..."; comm may hold spaces.
    std::string stat = ReadFile(entry.path().string() + "/stat");
    size_t paren = stat.rfind(')');
    if (paren == std::string::npos) continue;
    std::istringstream fields(stat.substr(paren + 1));
    char state = '?';
    ProcessInfo info;
    fields >> state >> info.ppid >> info.pgid;
    if (!fields || state == 'Z' || state == 'X') continue;
    info.pid = static_cast<pid_t>(std::stol(name));
    info.cmdline = cmdline;
    found.push_back(info);
  }
  return found;
}

std::string Describe(const std::vector<ProcessInfo>& processes) {
  std::string out;
  for (const ProcessInfo& p : processes) {
    out += "  pid " + std::to_string(p.pid) + " ppid " + std::to_string(p.ppid) + " pgid " +
           std::to_string(p.pgid) + ": " + p.cmdline + "\n";
  }
  return out;
}

class HandlerProcessesTest : public ::testing::Test {
 protected:
  void TearDown() override {
    process_.reset();  // SIGKILL if the test ended early
    // Whatever of ours is left (the test failed): gone by pid, not by name.
    for (const ProcessInfo& p : ProcessesMentioning(dir_.path())) kill(p.pid, SIGKILL);
  }

  void Start() {
    std::filesystem::create_directory(dir_.File("bin"));
    std::filesystem::create_symlink("/bin/sleep", dir_.File("bin/sleep"));
    port_ = FreePort();
    dir_.Write("hmac.secret", kSecret);
    std::string config = R"(
[server]
listen = "127.0.0.1:)" + std::to_string(port_) +
                         R"("
threads = 1

[queue]
backend = "sqlite"
path = ")" + dir_.File("queue.db") +
                         R"("
durability = "process"

[worker]
sidecar = "127.0.0.1:0"
shutdown_grace = "2s"
)";
    auto add = [&](const std::string& type, const std::string& interpreter,
                   const std::string& script, const std::string& settings) {
      std::string path = dir_.Write(type + ".script", script);
      config += "\n[[sources]]\nname = \"" + type + "\"\nkind = \"hmac\"\npath = \"/hooks/" + type +
                "\"\nsecret = { file = \"" + dir_.File("hmac.secret") +
                "\" }\ndedupe = \"/id\"\njob = \"" + type + "\"\n";
      config += "\n[[jobs]]\ntype = \"" + type + "\"\nhandler = { command = [\"" + interpreter +
                "\", \"" + path + "\", \"" + dir_.path() + "\"] }\n" + settings +
                "backoff = { base = \"100ms\", factor = 2, max = \"1s\", jitter = \"none\" }\n";
    };
    add("good", "/usr/bin/python3", kGoodBot,
        "concurrency = 2\ntimeout = \"5s\"\nmax_attempts = 3\n");
    add("forking", "/usr/bin/python3", kForkingBot,
        "concurrency = 1\ntimeout = \"1s\"\nmax_attempts = 2\n");
    add("stubborn", "/usr/bin/python3", kStubbornBot,
        "concurrency = 1\ntimeout = \"1s\"\nmax_attempts = 2\n");
    // Its attempts must end by the exit (in milliseconds), not by this timeout.
    add("exiting", "/bin/sh", kExitingBot,
        "concurrency = 1\ntimeout = \"10s\"\nmax_attempts = 2\n");
    add("garbage", "/usr/bin/python3", kGarbageBot,
        "concurrency = 1\ntimeout = \"5s\"\nmax_attempts = 2\n");
    config_ = dir_.Write("firebreak.toml", config);
    process_ = std::make_unique<FirebreakProcess>("run", config_, dir_.File("log.txt"), port_);
    ASSERT_TRUE(process_->Start()) << process_->Log();
  }

  void Send(const std::string& type, const std::string& id, const std::string& extra = "") {
    auto res =
        PostHmacSigned(port_, "/hooks/" + type, kSecret, R"({"id":")" + id + "\"" + extra + "}");
    ASSERT_TRUE(res.ok()) << res.status().ToString();
    ASSERT_EQ(res->status, 200) << res->body;
  }

  std::set<std::string> GoodDone() {
    std::vector<std::string> lines = ReadLines(dir_.File("good.log"));
    return {lines.begin(), lines.end()};
  }

  // The dead-lettered jobs, as `firebreak dlq show` gives them.
  std::vector<nlohmann::json> DeadJobs() {
    std::vector<nlohmann::json> jobs;
    CommandResult list = RunFirebreak({"dlq", "list", "-c", config_});
    std::istringstream lines(list.out);
    for (std::string line; std::getline(lines, line);) {
      if (line.size() < 26 || line.rfind("ID ", 0) == 0 || line.rfind("more:", 0) == 0) continue;
      CommandResult show = RunFirebreak({"dlq", "show", line.substr(0, 26), "-c", config_});
      auto job = nlohmann::json::parse(show.out, nullptr, false);
      if (job.is_object()) jobs.push_back(std::move(job));
    }
    return jobs;
  }

  TempDir dir_;
  uint16_t port_ = 0;
  std::string config_;
  std::unique_ptr<FirebreakProcess> process_;
};

TEST_F(HandlerProcessesTest, NoHandlerProcessOutlivesItsJobOrFirebreak) {
  ASSERT_NO_FATAL_FAILURE(Start());
  for (int i = 0; i < 10; ++i) Send("good", "g" + std::to_string(i));
  Send("forking", "f1");
  Send("stubborn", "s1", R"(,"mode":"hang")");
  Send("exiting", "e1");
  Send("garbage", "x1");
  for (int i = 10; i < 20; ++i) Send("good", "g" + std::to_string(i));

  std::vector<nlohmann::json> dead;
  ASSERT_TRUE(WaitFor(
      [&] {
        if (GoodDone().size() < 20) return false;
        dead = DeadJobs();
        return dead.size() >= 4;
      },
      seconds(40)))
      << "good: " << GoodDone().size() << ", dead: " << dead.size() << "\n"
      << process_->Log();
  // The good handler type kept working alongside.
  std::string scrape = ScrapeMetrics(port_);
  EXPECT_EQ(
      MetricValue(scrape, "firebreak_jobs_total", {"job_type=\"good\"", "outcome=\"succeeded\""}),
      20);
  EXPECT_EQ(MetricValue(scrape, "firebreak_jobs_total", {"job_type=\"good\""}), 20);

  std::map<std::string, nlohmann::json> dead_by_type;
  for (const nlohmann::json& job : dead) dead_by_type[job.value("type", "")] = job;
  ASSERT_EQ(dead_by_type.size(), 4u) << ::testing::PrintToString(dead.size());
  for (const char* type : {"forking", "stubborn"}) {
    const nlohmann::json& attempts = dead_by_type[type]["attempts"];
    ASSERT_EQ(attempts.size(), 2u) << type;
    for (const nlohmann::json& a : attempts) EXPECT_EQ(a.value("error", ""), "timed out after 1s");
  }
  for (const nlohmann::json& a : dead_by_type["exiting"]["attempts"]) {
    EXPECT_EQ(a.value("error", ""), "handler exited with code 3");
    EXPECT_LT(a.value("duration_ms", int64_t{0}), 5000) << "the exit waited for the timeout";
  }
  EXPECT_EQ(dead_by_type["exiting"]["attempts"].size(), 2u);
  for (const nlohmann::json& a : dead_by_type["garbage"]["attempts"]) {
    EXPECT_EQ(a.value("error", "").rfind("protocol error: answer line is not JSON", 0), 0u)
        << a.dump();
  }

  // A stubborn process that now sits idle, with its child, when firebreak stops.
  Send("stubborn", "s2");
  ASSERT_TRUE(WaitFor(
      [&] {
        return MetricValue(ScrapeMetrics(port_), "firebreak_jobs_total",
                           {"job_type=\"stubborn\"", "outcome=\"succeeded\""}) == 1;
      },
      seconds(10)))
      << process_->Log();

  // Now only pool processes and their own process groups may exist: no orphan of a
  // killed or exited handler (its sleeps were in its group).
  const pid_t firebreak = process_->pid();
  std::vector<ProcessInfo> alive = ProcessesMentioning(dir_.path());
  std::set<pid_t> pool;
  for (const ProcessInfo& p : alive) {
    if (p.ppid == firebreak) pool.insert(p.pid);
  }
  std::vector<ProcessInfo> orphans;
  int sleeps = 0;
  for (const ProcessInfo& p : alive) {
    if (p.pid == firebreak || pool.count(p.pid)) continue;
    if (pool.count(p.pgid) == 0) orphans.push_back(p);
    if (p.cmdline.find("/bin/sleep") != std::string::npos) ++sleeps;
  }
  EXPECT_TRUE(orphans.empty()) << "left behind by handlers:\n" << Describe(orphans);
  EXPECT_EQ(sleeps, 1) << "only the idle stubborn handler's child should run:\n" << Describe(alive);

  std::string log = process_->Log();
  EXPECT_NE(log.find(R"("job_type":"garbage","pid")"), std::string::npos);
  size_t truncated = log.find(R"("msg":"handler stderr line truncated")");
  EXPECT_NE(truncated, std::string::npos) << "the 1 MiB stderr line was not cut";
  EXPECT_NE(log.find(R"("bytes_dropped":)" + std::to_string(1024 * 1024 - 16 * 1024)),
            std::string::npos);

  // SIGTERM: the stubborn one ignores it and its stdin closing; it and its child go too.
  ASSERT_EQ(process_->Terminate(seconds(20)), 0) << process_->Log();
  bool none_left = WaitFor([&] { return ProcessesMentioning(dir_.path()).empty(); }, seconds(5));
  EXPECT_TRUE(none_left) << "left behind after firebreak stopped:\n"
                         << Describe(ProcessesMentioning(dir_.path()));
}

}  // namespace
}  // namespace firebreak::testing
