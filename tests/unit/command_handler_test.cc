#include "worker/command_handler.h"

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "telemetry/log.h"
#include "worker/handler.h"

namespace firebreak {
namespace {

using std::chrono::milliseconds;
using ::testing::HasSubstr;
using ::testing::StartsWith;
using Kind = HandlerResult::Kind;

// One Python process per pool slot; the envelope's payload.mode says how to behave.
constexpr const char* kHandlerScript = R"PY(
import json, os, sys, time
ignore_eof = False
while True:
    line = sys.stdin.readline()
    if not line:
        if ignore_eof:
            time.sleep(60)
        sys.exit(0)
    env = json.loads(line)
    jid = env["id"]
    p = env.get("payload") or {}
    mode = p.get("mode", "ok")
    if "fork_pidfile" in p:
        # A grandchild in the handler's process group, before doing as `mode` says.
        import subprocess
        child = subprocess.Popen(["/bin/sleep", "300"], stdin=subprocess.DEVNULL,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        with open(p["fork_pidfile"] + ".tmp", "w") as f:
            f.write("%d %d %d %d" % (child.pid, os.getpid(), os.getpgid(0),
                                     os.getpgid(child.pid)))
        os.rename(p["fork_pidfile"] + ".tmp", p["fork_pidfile"])
    ans = {"id": jid, "ok": True,
           "actions": [{"pid": os.getpid(),
                        "sidecar": os.environ.get("FIREBREAK_SIDECAR", "")}]}
    if mode == "fail":
        ans = {"id": jid, "ok": False, "error": "upstream down", "retry": True,
               "retry_after": 2.5}
    elif mode == "reject":
        ans = {"id": jid, "ok": False, "error": "bad input", "retry": False}
    elif mode == "crash":
        sys.stderr.write("about to crash\n")
        sys.stderr.flush()
        os._exit(3)
    elif mode == "sleep":
        time.sleep(p["seconds"])
    elif mode == "garbage":
        ans = None
        sys.stdout.write("this is not json\n")
    elif mode == "wrongid":
        ans["id"] = "someone-else"
    elif mode == "stderr":
        sys.stderr.write("note for " + jid + "\n")
        sys.stderr.flush()
    elif mode == "huge":
        ans = None
        sys.stdout.write("x" * (1024 * 1024 + 100) + "\n")
    elif mode == "ignore_eof":
        ignore_eof = True
    elif mode == "stderr_huge":
        # One 50 MB line of 3-byte characters (16 KiB is not a character boundary).
        sys.stderr.write("\u20ac" * (50 * 1024 * 1024 // 3) + "\n")
        sys.stderr.write("after the huge line\n")
        sys.stderr.flush()
    elif mode == "stderr_lines":
        for i in range(p["count"]):
            sys.stderr.write(("%s line %d " % (jid, i)).ljust(p["size"], "x") + "\n")
        sys.stderr.write("done " + jid + "\n")
        sys.stderr.flush()
    elif mode == "stderr_repeat":
        for i in range(p["count"]):
            sys.stderr.write(p["text"] + "\n")
        sys.stderr.write("done " + jid + "\n")
        sys.stderr.flush()
    if ans is not None:
        sys.stdout.write(json.dumps(ans) + "\n")
    sys.stdout.flush()
)PY";

bool ProcessExists(pid_t pid) { return kill(pid, 0) == 0 || errno != ESRCH; }

std::string ReadFile(const std::string& path);

// True while `pid` runs. A killed grandchild is inherited by PID 1, which may take a
// moment to reap it: a zombie does not count as running.
bool ProcessRunning(pid_t pid) {
  if (kill(pid, 0) != 0 && errno == ESRCH) return false;
  std::string stat = ReadFile("/proc/" + std::to_string(pid) + "/stat");
  size_t paren = stat.rfind(')');
  if (paren == std::string::npos || paren + 2 >= stat.size()) return false;
  char state = stat[paren + 2];
  return state != 'Z' && state != 'X';
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// Points fd 1 at a file so log lines (sync or spdlog's async thread) can be read back.
class StdoutCapture {
 public:
  explicit StdoutCapture(std::string path) : path_(std::move(path)) {
    std::fflush(stdout);
    saved_ = dup(1);
    int fd = open(path_.c_str(), O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0600);
    dup2(fd, 1);
    close(fd);
  }
  ~StdoutCapture() {
    log::Flush();
    std::fflush(stdout);
    dup2(saved_, 1);
    close(saved_);
  }
  std::string Text() const {
    log::Flush();
    return ReadFile(path_);
  }

 private:
  std::string path_;
  int saved_ = -1;
};

// The captured log's lines about `job_id` with message `msg` ("" = any job).
std::vector<nlohmann::json> LogLines(const std::string& text, const std::string& msg,
                                     const std::string& job_id = "") {
  std::vector<nlohmann::json> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    EXPECT_FALSE(j.is_discarded()) << "not JSON (or not UTF-8): " << line.substr(0, 200);
    if (j.is_discarded() || j.value("msg", "") != msg) continue;
    if (!job_id.empty() && j.value("job_id", "") != job_id) continue;
    lines.push_back(std::move(j));
  }
  return lines;
}

int64_t SumOf(const std::vector<nlohmann::json>& lines, const std::string& field) {
  int64_t sum = 0;
  for (const nlohmann::json& j : lines) sum += j.value(field, int64_t{0});
  return sum;
}

class CommandHandlerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char dir_template[] = "/tmp/firebreak_command_handler_XXXXXX";
    ASSERT_NE(mkdtemp(dir_template), nullptr);
    dir_ = dir_template;
    script_ = dir_ + "/handler.py";
    std::ofstream(script_) << kHandlerScript;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::unique_ptr<Handler> Make(int concurrency, std::vector<std::string> command = {}) {
    JobConfig job;
    job.type = "test.job";
    job.concurrency = concurrency;
    job.handler.command =
        command.empty() ? std::vector<std::string>{"/usr/bin/python3", "-u", script_} : command;
    Result<std::unique_ptr<Handler>> handler = MakeHandler(job, "127.0.0.1:8081", io_);
    EXPECT_TRUE(handler.ok()) << handler.status().ToString();
    return handler.ok() ? std::move(handler).value() : nullptr;
  }

  // Straight through CommandHandler::Create, to choose how exits are watched.
  std::unique_ptr<CommandHandler> MakePool(ExitWatch exit_watch, std::vector<std::string> command) {
    JobConfig job;
    job.type = "test.job";
    job.concurrency = 1;
    job.handler.command = std::move(command);
    Result<std::unique_ptr<CommandHandler>> handler =
        CommandHandler::Create(job, "127.0.0.1:8081", io_, exit_watch);
    EXPECT_TRUE(handler.ok()) << handler.status().ToString();
    return handler.ok() ? std::move(handler).value() : nullptr;
  }

  static std::string Envelope(const std::string& id, const std::string& payload) {
    return R"({"id":")" + id + R"(","type":"test.job","attempt":1,"payload":)" + payload + "}";
  }

  // Runs the io_context until `done()` or `limit` passes.
  bool RunUntil(const std::function<bool()>& done, milliseconds limit = milliseconds(5000)) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    while (!done()) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      if (io_.stopped()) io_.restart();
      if (io_.run_one_for(milliseconds(10)) == 0) usleep(1000);
    }
    return true;
  }

  // One Run, checking the callback comes later (not inline) and exactly once.
  HandlerResult RunOne(Handler& handler, const std::string& id, const std::string& payload,
                       milliseconds timeout = milliseconds(5000)) {
    int calls = 0;
    bool returned = false;
    HandlerResult result;
    handler.Run({id, "", Envelope(id, payload)}, timeout, [&](HandlerResult r) {
      EXPECT_TRUE(returned) << "callback ran inside Run";
      ++calls;
      result = std::move(r);
    });
    returned = true;
    EXPECT_TRUE(RunUntil([&] { return calls > 0; }, timeout + milliseconds(5000)));
    RunUntil([] { return false; }, milliseconds(20));  // a second call would show up here
    EXPECT_EQ(calls, 1);
    return result;
  }

  // The pid the script reports in its actions.
  static pid_t PidOf(const HandlerResult& result) {
    size_t at = result.actions_json.find("\"pid\":");
    if (at == std::string::npos) return -1;
    return static_cast<pid_t>(std::stol(result.actions_json.substr(at + 6)));
  }

  boost::asio::io_context io_;  // first member: destroyed last
  std::string dir_;
  std::string script_;
};

TEST(CommandAnswerTest, ParsesSuccessWithActions) {
  Result<HandlerResult> r =
      ParseCommandAnswer(R"({"id":"j1","ok":true,"actions":[ {"a" : 1}, 2 ]})", "j1");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->kind, Kind::kOk);
  EXPECT_EQ(r->actions_json, R"([{"a":1},2])");

  r = ParseCommandAnswer(R"({"ok":true,"id":"j1","actions":null})", "j1");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->actions_json, "");
}

TEST(CommandAnswerTest, ParsesFailures) {
  Result<HandlerResult> r =
      ParseCommandAnswer(R"({"id":"j","ok":false,"error":"boom","retry":true})", "j");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->kind, Kind::kFailed);
  EXPECT_EQ(r->error, "boom");
  EXPECT_FALSE(r->retry_after.has_value());

  r = ParseCommandAnswer(R"({"id":"j","ok":false})", "j");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->kind, Kind::kFailed);  // retry defaults to true
  EXPECT_EQ(r->error, "handler reported failure");

  r = ParseCommandAnswer(R"({"id":"j","ok":false,"error":"no","retry":false})", "j");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->kind, Kind::kRejected);

  r = ParseCommandAnswer(R"({"id":"j","ok":false,"retry_after":2.5})", "j");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->retry_after, milliseconds(2500));
  r = ParseCommandAnswer(R"({"id":"j","ok":false,"retry_after":7})", "j");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->retry_after, milliseconds(7000));
}

TEST(CommandAnswerTest, RejectsProtocolViolations) {
  EXPECT_FALSE(ParseCommandAnswer("not json", "j").ok());
  EXPECT_FALSE(ParseCommandAnswer("[1,2]", "j").ok());
  EXPECT_FALSE(ParseCommandAnswer(R"({"ok":true})", "j").ok());
  EXPECT_FALSE(ParseCommandAnswer(R"({"id":"other","ok":true})", "j").ok());
  EXPECT_FALSE(ParseCommandAnswer(R"({"id":"j"})", "j").ok());
  EXPECT_FALSE(ParseCommandAnswer(R"({"id":"j","ok":"yes"})", "j").ok());
  EXPECT_FALSE(ParseCommandAnswer(R"({"id":"j","ok":true,"actions":{}})", "j").ok());
  EXPECT_FALSE(ParseCommandAnswer(R"({"id":"j","ok":false,"retry":"no"})", "j").ok());
  EXPECT_FALSE(ParseCommandAnswer(R"({"id":"j","ok":false,"retry_after":-1})", "j").ok());
  EXPECT_FALSE(ParseCommandAnswer(R"({"id":"j","ok":true} trailing)", "j").ok());
}

TEST_F(CommandHandlerTest, EmptyCommandIsRejected) {
  JobConfig job;
  job.type = "t";
  job.handler.command = {""};
  Result<std::unique_ptr<Handler>> handler = MakeHandler(job, "x", io_);
  ASSERT_FALSE(handler.ok());
  EXPECT_EQ(handler.status().code(), StatusCode::kInvalidArgument);
}

TEST_F(CommandHandlerTest, SuccessReturnsActionsAndExportsSidecar) {
  auto handler = Make(2);
  HandlerResult r = RunOne(*handler, "job-1", R"({"mode":"ok"})");
  EXPECT_EQ(r.kind, Kind::kOk);
  EXPECT_THAT(r.actions_json, HasSubstr(R"("sidecar":"127.0.0.1:8081")"));
  pid_t pid = PidOf(r);
  EXPECT_GT(pid, 0);
  // The same process serves the next job.
  HandlerResult again = RunOne(*handler, "job-2", R"({"mode":"ok"})");
  EXPECT_EQ(again.kind, Kind::kOk);
  EXPECT_EQ(PidOf(again), pid);
}

TEST_F(CommandHandlerTest, RetryableFailureCarriesRetryAfter) {
  auto handler = Make(1);
  HandlerResult r = RunOne(*handler, "job-f", R"({"mode":"fail"})");
  EXPECT_EQ(r.kind, Kind::kFailed);
  EXPECT_EQ(r.error, "upstream down");
  EXPECT_EQ(r.retry_after, milliseconds(2500));
}

TEST_F(CommandHandlerTest, NoRetryIsRejected) {
  auto handler = Make(1);
  HandlerResult r = RunOne(*handler, "job-r", R"({"mode":"reject"})");
  EXPECT_EQ(r.kind, Kind::kRejected);
  EXPECT_EQ(r.error, "bad input");
}

TEST_F(CommandHandlerTest, CrashFailsTheJobAndNextJobGetsNewProcess) {
  auto handler = Make(1);
  pid_t first = PidOf(RunOne(*handler, "job-a", R"({"mode":"ok"})"));
  ASSERT_GT(first, 0);
  HandlerResult crashed = RunOne(*handler, "job-crash", R"({"mode":"crash"})");
  EXPECT_EQ(crashed.kind, Kind::kFailed);
  EXPECT_EQ(crashed.error, "handler exited with code 3");
  EXPECT_FALSE(ProcessExists(first)) << "crashed process was not reaped";
  HandlerResult next = RunOne(*handler, "job-b", R"({"mode":"ok"})");
  EXPECT_EQ(next.kind, Kind::kOk);
  EXPECT_NE(PidOf(next), first);
}

TEST_F(CommandHandlerTest, TimeoutKillsProcessAndNextJobWorks) {
  auto handler = Make(1);
  pid_t first = PidOf(RunOne(*handler, "job-a", R"({"mode":"ok"})"));
  ASSERT_GT(first, 0);
  auto start = std::chrono::steady_clock::now();
  HandlerResult r =
      RunOne(*handler, "job-slow", R"({"mode":"sleep","seconds":30})", milliseconds(300));
  auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(r.kind, Kind::kTimedOut);
  EXPECT_EQ(r.error, "timed out after 300ms");
  EXPECT_GE(took, milliseconds(300));
  EXPECT_LT(took, milliseconds(2000));
  EXPECT_FALSE(ProcessExists(first)) << "timed-out process still exists";
  HandlerResult next = RunOne(*handler, "job-b", R"({"mode":"ok"})");
  EXPECT_EQ(next.kind, Kind::kOk);
  EXPECT_NE(PidOf(next), first);
}

// A job whose handler first forks a grandchild (a sleep in its process group), then
// does as `mode_fields` say.
class CommandHandlerGroupKillTest : public CommandHandlerTest {
 protected:
  void StartJob(const std::string& mode_fields, milliseconds timeout) {
    handler_ = Make(1);
    pool_ = dynamic_cast<CommandHandler*>(handler_.get());
    ASSERT_NE(pool_, nullptr);
    std::string pidfile = dir_ + "/grandchild.pid";
    handler_->Run(
        {"job-fork", "",
         Envelope("job-fork", "{" + mode_fields + R"(,"fork_pidfile":")" + pidfile + R"("})")},
        timeout, [this](HandlerResult r) {
          ++calls_;
          result_ = std::move(r);
        });
    ASSERT_TRUE(RunUntil([&] { return !ReadFile(pidfile).empty(); })) << "no grandchild started";
    std::istringstream ids(ReadFile(pidfile));
    pid_t leader_group = -1;
    pid_t grandchild_group = -1;
    ids >> grandchild_ >> leader_ >> leader_group >> grandchild_group;
    ASSERT_TRUE(ids) << ReadFile(pidfile);
    EXPECT_EQ(leader_group, leader_) << "the handler leads its own process group";
    EXPECT_EQ(grandchild_group, leader_);
  }

  void ExpectGroupGone(const char* after) {
    EXPECT_FALSE(ProcessExists(leader_)) << "the handler was not reaped after " << after;
    // SIGKILL is sent before the answer; the grandchild is gone moments later.
    EXPECT_TRUE(RunUntil([&] { return !ProcessRunning(grandchild_); }, milliseconds(2000)))
        << "grandchild " << grandchild_ << " survived " << after;
  }

  void TearDown() override {
    handler_.reset();
    if (grandchild_ > 0 && ProcessRunning(grandchild_)) kill(grandchild_, SIGKILL);  // ours
    CommandHandlerTest::TearDown();
  }

  std::unique_ptr<Handler> handler_;
  CommandHandler* pool_ = nullptr;
  pid_t leader_ = -1;
  pid_t grandchild_ = -1;
  int calls_ = 0;
  HandlerResult result_;
};

TEST_F(CommandHandlerGroupKillTest, TimeoutKillsTheWholeGroup) {
  ASSERT_NO_FATAL_FAILURE(StartJob(R"("mode":"sleep","seconds":60)", milliseconds(1500)));
  EXPECT_TRUE(ProcessRunning(grandchild_));
  ASSERT_TRUE(RunUntil([&] { return calls_ == 1; }));
  EXPECT_EQ(result_.kind, Kind::kTimedOut);
  ExpectGroupGone("the timeout");
}

TEST_F(CommandHandlerGroupKillTest, ProtocolErrorKillsTheWholeGroup) {
  ASSERT_NO_FATAL_FAILURE(StartJob(R"("mode":"garbage")", milliseconds(5000)));
  ASSERT_TRUE(RunUntil([&] { return calls_ == 1; }));
  EXPECT_THAT(result_.error, StartsWith("protocol error:"));
  ExpectGroupGone("a protocol error");
}

TEST_F(CommandHandlerGroupKillTest, ExitingOnItsOwnKillsTheRestOfTheGroup) {
  ASSERT_NO_FATAL_FAILURE(StartJob(R"("mode":"crash")", milliseconds(5000)));
  ASSERT_TRUE(RunUntil([&] { return calls_ == 1; }));
  EXPECT_EQ(result_.error, "handler exited with code 3");
  ExpectGroupGone("the handler's exit");
}

TEST_F(CommandHandlerGroupKillTest, ShutdownKillsTheWholeGroupOfAProcessThatIgnoresIt) {
  ASSERT_NO_FATAL_FAILURE(StartJob(R"("mode":"ignore_eof")", milliseconds(5000)));
  ASSERT_TRUE(RunUntil([&] { return calls_ == 1; }));
  EXPECT_EQ(result_.kind, Kind::kOk);
  EXPECT_TRUE(ProcessRunning(grandchild_));
  handler_->Shutdown();
  EXPECT_TRUE(RunUntil([&] { return pool_->ProcessIds().empty(); }, milliseconds(4000)));
  ExpectGroupGone("shutdown");
}

TEST_F(CommandHandlerGroupKillTest, DestructorKillsTheWholeGroup) {
  ASSERT_NO_FATAL_FAILURE(StartJob(R"("mode":"sleep","seconds":60)", milliseconds(60'000)));
  EXPECT_TRUE(ProcessRunning(grandchild_));
  handler_.reset();
  ExpectGroupGone("the destructor");
  ASSERT_TRUE(RunUntil([&] { return calls_ == 1; }));
  EXPECT_EQ(result_.error, "handler stopped");
}

TEST_F(CommandHandlerTest, GarbageLineFailsAndRestartsProcess) {
  auto handler = Make(1);
  pid_t first = PidOf(RunOne(*handler, "job-a", R"({"mode":"ok"})"));
  HandlerResult r = RunOne(*handler, "job-g", R"({"mode":"garbage"})");
  EXPECT_EQ(r.kind, Kind::kFailed);
  EXPECT_THAT(r.error, StartsWith("protocol error: answer line is not JSON"));
  EXPECT_FALSE(ProcessExists(first));
  EXPECT_EQ(RunOne(*handler, "job-b", R"({"mode":"ok"})").kind, Kind::kOk);
}

TEST_F(CommandHandlerTest, WrongIdAndHugeLineAreProtocolErrors) {
  auto handler = Make(1);
  HandlerResult wrong = RunOne(*handler, "job-w", R"({"mode":"wrongid"})");
  EXPECT_EQ(wrong.kind, Kind::kFailed);
  EXPECT_THAT(wrong.error, HasSubstr("someone-else"));
  HandlerResult huge = RunOne(*handler, "job-h", R"({"mode":"huge"})");
  EXPECT_EQ(huge.kind, Kind::kFailed);
  EXPECT_THAT(huge.error, HasSubstr("longer than 1 MiB"));
  EXPECT_EQ(RunOne(*handler, "job-b", R"({"mode":"ok"})").kind, Kind::kOk);
}

TEST_F(CommandHandlerTest, StderrLinesAreLoggedWithJobId) {
  auto handler = Make(1);
  StdoutCapture capture(dir_ + "/log.txt");
  HandlerResult r = RunOne(*handler, "job-s1", R"({"mode":"stderr"})");
  EXPECT_EQ(r.kind, Kind::kOk);  // stderr output does not disturb the protocol
  bool logged = RunUntil([&] {
    std::string text = capture.Text();
    return text.find(R"("msg":"handler stderr")") != std::string::npos &&
           text.find(R"("job_id":"job-s1")") != std::string::npos &&
           text.find(R"("line":"note for job-s1")") != std::string::npos;
  });
  EXPECT_TRUE(logged) << capture.Text();
  // A crash's last words are logged too.
  RunOne(*handler, "job-c", R"({"mode":"crash"})");
  EXPECT_TRUE(RunUntil([&] {
    return capture.Text().find(R"("line":"about to crash")") != std::string::npos;
  })) << capture.Text();
}

// Acceptance (issue 13): a 50 MB stderr line was 3,200 log lines. Now it is its first
// 16 KiB (cut at a character boundary) and one line saying how much was dropped.
TEST_F(CommandHandlerTest, AHugeStderrLineIsLoggedTruncatedOnce) {
  auto handler = Make(1);
  StdoutCapture capture(dir_ + "/log.txt");
  EXPECT_EQ(RunOne(*handler, "job-huge", R"({"mode":"stderr_huge"})", milliseconds(20'000)).kind,
            Kind::kOk);
  ASSERT_TRUE(RunUntil([&] {
    return capture.Text().find(R"("line":"after the huge line")") != std::string::npos;
  })) << "the line after the huge one was not logged";
  std::string text = capture.Text();
  std::vector<nlohmann::json> logged = LogLines(text, "handler stderr", "job-huge");
  ASSERT_EQ(logged.size(), 2u);
  EXPECT_EQ(logged[0].value("truncated", false), true);
  constexpr size_t kLineBytes = 50 * 1024 * 1024 / 3 * 3;
  const std::string prefix = logged[0].value("line", "");
  EXPECT_EQ(prefix.size(), 16383u);  // 5461 whole characters of 3 bytes
  EXPECT_EQ(prefix.substr(0, 3), "\u20ac");
  EXPECT_FALSE(logged[1].contains("truncated"));
  std::vector<nlohmann::json> tail = LogLines(text, "handler stderr line truncated", "job-huge");
  ASSERT_EQ(tail.size(), 1u);
  EXPECT_EQ(tail[0].value("bytes_dropped", int64_t{0}), static_cast<int64_t>(kLineBytes - 16383));
  EXPECT_EQ(tail[0].value("trace_id", "x"), "");  // fields of a line about a job are there
  EXPECT_LT(text.size(), 40'000u) << "the log is bounded";
  EXPECT_TRUE(LogLines(text, "handler stderr dropped").empty());
}

// Acceptance (issue 13): each attempt may log 200 stderr lines and 64 KiB; the rest is
// dropped and counted, and the next attempt logs again.
TEST_F(CommandHandlerTest, StderrHasABudgetPerAttempt) {
  auto handler = Make(1);
  auto* pool = dynamic_cast<CommandHandler*>(handler.get());
  StdoutCapture capture(dir_ + "/log.txt");
  // 1000 short lines: the line budget runs out (1000 - 200 and the "done" line dropped).
  EXPECT_EQ(RunOne(*handler, "job-many", R"({"mode":"stderr_lines","count":1000,"size":100})").kind,
            Kind::kOk);
  // 100 lines of 1000 bytes: the byte budget runs out after 65 (65,000 <= 65,536).
  EXPECT_EQ(RunOne(*handler, "job-big", R"({"mode":"stderr_lines","count":100,"size":1000})").kind,
            Kind::kOk);
  HandlerResult last = RunOne(*handler, "job-after", R"({"mode":"stderr"})");
  EXPECT_EQ(last.kind, Kind::kOk);
  handler->Shutdown();  // EOF on stderr reports what is still counted
  ASSERT_TRUE(RunUntil([&] { return pool->ProcessIds().empty(); }));
  ASSERT_TRUE(RunUntil([&] {
    std::string text = capture.Text();
    return text.find(R"("line":"note for job-after")") != std::string::npos &&
           SumOf(LogLines(text, "handler stderr dropped", "job-many"), "lines_dropped") == 801 &&
           SumOf(LogLines(text, "handler stderr dropped", "job-big"), "lines_dropped") == 36;
  })) << capture.Text().substr(capture.Text().size() > 3000 ? capture.Text().size() - 3000 : 0);
  std::string text = capture.Text();
  EXPECT_EQ(LogLines(text, "handler stderr", "job-many").size(), 200u);
  EXPECT_EQ(SumOf(LogLines(text, "handler stderr dropped", "job-many"), "bytes_dropped"),
            800 * 100 + static_cast<int64_t>(std::string("done job-many").size()));
  EXPECT_EQ(LogLines(text, "handler stderr", "job-big").size(), 65u);
  EXPECT_EQ(SumOf(LogLines(text, "handler stderr dropped", "job-big"), "bytes_dropped"),
            35 * 1000 + static_cast<int64_t>(std::string("done job-big").size()));
  // At most two reports each: when the attempt ended, and for what trailed it.
  EXPECT_LE(LogLines(text, "handler stderr dropped", "job-many").size(), 2u);
  EXPECT_TRUE(LogLines(text, "handler stderr dropped", "job-after").empty());
}

// Acceptance (issue 13): the same line printed over and over is one log line, then one
// with "repeated": N (log::WriteLimited, keyed on job type and text).
TEST_F(CommandHandlerTest, RepeatedStderrLinesAreCounted) {
  auto handler = Make(1);
  std::string path = dir_ + "/log.txt";
  StdoutCapture capture(path);
  EXPECT_EQ(RunOne(*handler, "job-rep",
                   R"({"mode":"stderr_repeat","count":150,"text":"same old warning"})")
                .kind,
            Kind::kOk);
  // Wait without log::Flush (it would end the repeat window early).
  ASSERT_TRUE(RunUntil(
      [&] { return ReadFile(path).find(R"("line":"done job-rep")") != std::string::npos; }));
  std::vector<nlohmann::json> lines = LogLines(capture.Text(), "handler stderr", "job-rep");
  std::vector<nlohmann::json> same;
  for (const nlohmann::json& j : lines) {
    if (j.value("line", "") == "same old warning") same.push_back(j);
  }
  ASSERT_EQ(same.size(), 2u) << ::testing::PrintToString(lines.size());
  EXPECT_FALSE(same[0].contains("repeated"));
  EXPECT_EQ(same[1].value("repeated", 0), 149);
  EXPECT_EQ(lines.size(), 3u);  // and the "done" line
}

TEST_F(CommandHandlerTest, ConcurrencyBoundsProcessesAndQueuesFifo) {
  auto handler = Make(3);
  auto* pool = dynamic_cast<CommandHandler*>(handler.get());
  ASSERT_NE(pool, nullptr);
  std::vector<int> finished;
  std::vector<HandlerResult> results(6);
  size_t max_processes = 0;
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 6; ++i) {
    std::string id = "job-" + std::to_string(i);
    handler->Run({id, "", Envelope(id, R"({"mode":"sleep","seconds":0.4})")}, milliseconds(5000),
                 [&, i](HandlerResult r) {
                   results[i] = std::move(r);
                   finished.push_back(i);
                 });
    max_processes = std::max(max_processes, pool->ProcessIds().size());
  }
  ASSERT_TRUE(RunUntil(
      [&] {
        max_processes = std::max(max_processes, pool->ProcessIds().size());
        return finished.size() == 6;
      },
      milliseconds(8000)));
  auto took = std::chrono::steady_clock::now() - start;
  EXPECT_LE(max_processes, 3u);
  std::set<pid_t> pids;
  for (const HandlerResult& r : results) {
    EXPECT_EQ(r.kind, Kind::kOk) << r.error;
    pids.insert(PidOf(r));
  }
  EXPECT_EQ(pids.size(), 3u);
  EXPECT_GE(took, milliseconds(800));  // two waves of three
  // FIFO: the first three Runs form the first wave.
  std::set<int> first_wave(finished.begin(), finished.begin() + 3);
  EXPECT_EQ(first_wave, (std::set<int>{0, 1, 2}));
}

TEST_F(CommandHandlerTest, ShutdownStopsIdleProcesses) {
  auto handler = Make(1);
  auto* pool = dynamic_cast<CommandHandler*>(handler.get());
  pid_t pid = PidOf(RunOne(*handler, "job-a", R"({"mode":"ok"})"));
  ASSERT_GT(pid, 0);
  handler->Shutdown();
  EXPECT_TRUE(RunUntil([&] { return pool->ProcessIds().empty(); }, milliseconds(3000)));
  EXPECT_FALSE(ProcessExists(pid));
  HandlerResult after = RunOne(*handler, "job-late", R"({"mode":"ok"})");
  EXPECT_EQ(after.kind, Kind::kFailed);
  EXPECT_EQ(after.error, "handler is shut down");
}

TEST_F(CommandHandlerTest, ShutdownKillsProcessThatIgnoresStdinClosing) {
  auto handler = Make(1);
  auto* pool = dynamic_cast<CommandHandler*>(handler.get());
  pid_t pid = PidOf(RunOne(*handler, "job-a", R"({"mode":"ignore_eof"})"));
  ASSERT_GT(pid, 0);
  auto start = std::chrono::steady_clock::now();
  handler->Shutdown();
  EXPECT_TRUE(RunUntil([&] { return pool->ProcessIds().empty(); }, milliseconds(4000)));
  EXPECT_GE(std::chrono::steady_clock::now() - start, milliseconds(900));
  EXPECT_FALSE(ProcessExists(pid));
}

TEST_F(CommandHandlerTest, DestructorKillsAndAnswersRunningJobs) {
  auto handler = Make(1);
  auto* pool = dynamic_cast<CommandHandler*>(handler.get());
  int calls = 0;
  HandlerResult result;
  handler->Run({"job-long", "", Envelope("job-long", R"({"mode":"sleep","seconds":30})")},
               milliseconds(60000), [&](HandlerResult r) {
                 ++calls;
                 result = std::move(r);
               });
  handler->Run({"job-queued", "", Envelope("job-queued", R"({"mode":"ok"})")}, milliseconds(60000),
               [&](HandlerResult) { ++calls; });
  ASSERT_TRUE(RunUntil([&] { return !pool->ProcessIds().empty(); }));
  pid_t pid = pool->ProcessIds().front();
  RunUntil([] { return false; }, milliseconds(100));
  handler.reset();
  EXPECT_FALSE(ProcessExists(pid));
  EXPECT_EQ(calls, 0);  // posted, not inline
  ASSERT_TRUE(RunUntil([&] { return calls == 2; }));
  EXPECT_EQ(result.kind, Kind::kFailed);
  EXPECT_EQ(result.error, "handler stopped");
}

TEST_F(CommandHandlerTest, MissingExecutableFailsTheJob) {
  auto handler = Make(1, {dir_ + "/does-not-exist"});
  HandlerResult r = RunOne(*handler, "job-x", "{}");
  EXPECT_EQ(r.kind, Kind::kFailed);
  EXPECT_THAT(r.error, HasSubstr("No such file or directory"));

  auto unknown = Make(1, {"firebreak-no-such-handler-command"});
  r = RunOne(*unknown, "job-y", "{}");
  EXPECT_EQ(r.kind, Kind::kFailed);
  EXPECT_THAT(r.error, HasSubstr("not found in PATH"));
}

TEST_F(CommandHandlerTest, ProcessExitingBeforeAnswerIsReported) {
  // /bin/sh reads one line and exits 0 without answering.
  auto handler = Make(1, {"/bin/sh", "-c", "read line; exit 0"});
  HandlerResult r = RunOne(*handler, "job-q", "{}");
  EXPECT_EQ(r.kind, Kind::kFailed);
  EXPECT_EQ(r.error, "handler exited with code 0");
}

TEST_F(CommandHandlerTest, SignalDeathIsReportedWithTheSignalName) {
  auto handler = Make(1, {"/bin/sh", "-c", "read line; kill -TERM $$"});
  HandlerResult r = RunOne(*handler, "job-t", "{}");
  EXPECT_EQ(r.kind, Kind::kFailed);
  EXPECT_EQ(r.error, "handler killed by signal 15 (SIGTERM)");
}

// Acceptance (issue 13): a handler that exits while a child of it still holds its
// stdout fails its attempt at once (not at the timeout) with its exit code, the child
// dies with it, and the next job gets a fresh process. Both ways of seeing the exit.
class CommandHandlerExitTest : public CommandHandlerTest,
                               public ::testing::WithParamInterface<ExitWatch> {};

TEST_P(CommandHandlerExitTest, ExitWhileAChildHoldsStdoutFailsAtOnce) {
  std::string pidfile = dir_ + "/child.pid";
  // The background sleep inherits stdin, stdout and stderr; the shell then exits 7.
  auto pool = MakePool(GetParam(), {"/bin/sh", "-c",
                                    "read line; /bin/sleep 300 & echo $! > " + pidfile +
                                        ".tmp; mv " + pidfile + ".tmp " + pidfile + "; exit 7"});
  ASSERT_NE(pool, nullptr);
  auto start = std::chrono::steady_clock::now();
  HandlerResult r = RunOne(*pool, "job-exit", "{}", milliseconds(20'000));
  auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(r.kind, Kind::kFailed);
  EXPECT_EQ(r.error, "handler exited with code 7");
  EXPECT_LT(took, milliseconds(2000)) << "the exit was not noticed before the timeout";
  ASSERT_FALSE(ReadFile(pidfile).empty());
  pid_t child = static_cast<pid_t>(std::stol(ReadFile(pidfile)));
  EXPECT_TRUE(RunUntil([&] { return !ProcessRunning(child); }, milliseconds(2000)))
      << "the handler's child " << child << " outlived it";
  if (ProcessRunning(child)) kill(child, SIGKILL);
  EXPECT_TRUE(pool->ProcessIds().empty());

  // The pool replaces it for the next job.
  auto good = MakePool(GetParam(), {"/usr/bin/python3", "-u", script_});
  EXPECT_EQ(RunOne(*good, "job-1", R"({"mode":"crash"})").error, "handler exited with code 3");
  EXPECT_EQ(RunOne(*good, "job-2", R"({"mode":"ok"})").kind, Kind::kOk);
}

TEST_P(CommandHandlerExitTest, AnAnswerWrittenJustBeforeExitingCounts) {
  // Answers (40 KB: more than one read) and exits. The io_context only runs once the
  // process is a zombie, so the exit is ready to be seen before most of the answer is read.
  auto pool = MakePool(GetParam(), {"/usr/bin/python3", "-c",
                                    "import json, os, sys\n"
                                    "env = json.loads(sys.stdin.readline())\n"
                                    "pad = [{'pad': 'x' * 1000}] * 40\n"
                                    "ans = {'id': env['id'], 'ok': True, 'actions': pad}\n"
                                    "sys.stdout.write(json.dumps(ans) + '\\n')\n"
                                    "sys.stdout.flush()\n"
                                    "os._exit(4)\n"});
  ASSERT_NE(pool, nullptr);
  for (int i = 0; i < 5; ++i) {
    // A fresh process each time (one that exits after answering must not get a job).
    ASSERT_TRUE(RunUntil([&] { return pool->ProcessIds().empty(); }));
    std::string id = "job-" + std::to_string(i);
    int calls = 0;
    HandlerResult result;
    pool->Run({id, "", Envelope(id, "{}")}, milliseconds(5000), [&](HandlerResult r) {
      ++calls;
      result = std::move(r);
    });
    ASSERT_EQ(pool->ProcessIds().size(), 1u);
    pid_t pid = pool->ProcessIds().front();
    // Run() wrote the envelope already (a pipe write completes at once); don't run `io_`.
    auto deadline = std::chrono::steady_clock::now() + milliseconds(5000);
    while (ProcessRunning(pid) && std::chrono::steady_clock::now() < deadline) usleep(2000);
    EXPECT_FALSE(ProcessRunning(pid)) << "the handler did not get its envelope without io";
    ASSERT_TRUE(RunUntil([&] { return calls == 1; }));
    EXPECT_EQ(result.kind, Kind::kOk) << id << ": " << result.error;
    EXPECT_EQ(result.actions_json.size(), 40u * 1010 + 39 + 2)
        << result.actions_json.substr(0, 100);
  }
}

INSTANTIATE_TEST_SUITE_P(CommandHandler, CommandHandlerExitTest,
                         ::testing::Values(ExitWatch::kPidfd, ExitWatch::kPoll),
                         [](const ::testing::TestParamInfo<ExitWatch>& param) {
                           return param.param == ExitWatch::kPidfd ? "Pidfd" : "Poll";
                         });

TEST_F(CommandHandlerTest, AChildThatLeftTheGroupDelaysTheAnswerOnlyBriefly) {
  // A child in its own session survives the group kill and keeps stdout open; the
  // exit is reported anyway, after the short wait for stdout to close.
  std::string pidfile = dir_ + "/escaped.pid";
  auto pool = MakePool(ExitWatch::kPidfd,
                       {"/usr/bin/python3", "-c",
                        "import os, subprocess, sys\n"
                        "sys.stdin.readline()\n"
                        "c = subprocess.Popen(['/bin/sleep', '300'], start_new_session=True)\n"
                        "open(sys.argv[1] + '.tmp', 'w').write(str(c.pid))\n"
                        "os.rename(sys.argv[1] + '.tmp', sys.argv[1])\n"
                        "os._exit(5)\n",
                        pidfile});
  ASSERT_NE(pool, nullptr);
  auto start = std::chrono::steady_clock::now();
  HandlerResult r = RunOne(*pool, "job-escape", "{}", milliseconds(20'000));
  EXPECT_EQ(r.error, "handler exited with code 5");
  EXPECT_LT(std::chrono::steady_clock::now() - start, milliseconds(2000));
  ASSERT_FALSE(ReadFile(pidfile).empty());
  pid_t escaped = static_cast<pid_t>(std::stol(ReadFile(pidfile)));
  if (ProcessRunning(escaped)) kill(escaped, SIGKILL);  // ours, and beyond the pool's reach
}

}  // namespace
}  // namespace firebreak
