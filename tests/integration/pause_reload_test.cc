// Issue 17: pause and resume a job type from the config file. `paused = true` on a
// [[jobs]] table pauses it when a running process reloads (SIGHUP) and resumes it when
// the line goes back to false; a file that does not load changes nothing and the process
// keeps running; a start with paused = true starts paused. Both backends.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <memory>
#include <thread>

#include "harness.h"

namespace firebreak::testing {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr char kSecret[] = "pause-reload-secret";

// Appends each job's payload id to argv[1].
constexpr char kBot[] = R"PY(
import json, sys
for line in sys.stdin:
    env = json.loads(line)
    with open(sys.argv[1], "a") as f:
        f.write(env["payload"]["id"] + "\n")
    print(json.dumps({"id": env["id"], "ok": True}), flush=True)
)PY";

class PauseReloadTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    backend_ = std::make_unique<QueueBackend>(GetParam(), dir_);
    ASSERT_TRUE(backend_->Start()) << backend_->Describe();
    dir_.Write("bot.py", kBot);
    dir_.Write("hmac.secret", kSecret);
    port_ = FreePort();
  }

  // Writes the config with `job_extra` in the [[jobs]] table; returns its path.
  std::string WriteConfig(const std::string& job_extra) {
    return dir_.Write("firebreak.toml", R"(
[server]
listen = "127.0.0.1:)" + std::to_string(port_) + R"("
threads = 1
)" + backend_->QueueToml() + R"(
[worker]
sidecar = "127.0.0.1:0"
shutdown_grace = "2s"

[[sources]]
name = "test"
kind = "hmac"
path = "/hooks/test"
secret = { file = ")" + dir_.File("hmac.secret") + R"(" }
dedupe = "/id"
job = "work"

[[jobs]]
type = "work"
handler = { command = ["/usr/bin/python3", ")" + dir_.File("bot.py") + R"(", ")" +
                                                 dir_.File("ran.txt") + R"("] }
)" + job_extra + "\n");
  }

  void Start(const std::string& config) {
    process_ = std::make_unique<FirebreakProcess>("run", config, dir_.File("log.txt"), port_);
    ASSERT_TRUE(process_->Start()) << process_->Log();
  }

  void Send(const std::string& id) {
    Result<HttpResponse> res =
        PostHmacSigned(port_, "/hooks/test", kSecret, R"({"id":")" + id + "\"}");
    ASSERT_TRUE(res.ok()) << res.status().ToString();
    ASSERT_EQ(res->status, 200) << res->body;
  }

  bool Ran(const std::string& id) const {
    for (const std::string& line : ReadLines(dir_.File("ran.txt"))) {
      if (line == id) return true;
    }
    return false;
  }

  // Sends SIGHUP and waits for the log line that says the reload was handled.
  void Reload(const std::string& expect_in_log) {
    const size_t before = Count(process_->Log(), expect_in_log);
    ASSERT_EQ(kill(process_->pid(), SIGHUP), 0);
    ASSERT_TRUE(WaitFor([&] { return Count(process_->Log(), expect_in_log) > before; },
                        seconds(10)))
        << process_->Log();
  }

  static size_t Count(const std::string& text, const std::string& what) {
    size_t n = 0;
    for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
    return n;
  }

  TempDir dir_;
  std::unique_ptr<QueueBackend> backend_;
  std::unique_ptr<FirebreakProcess> process_;
  uint16_t port_ = 0;
};

TEST_P(PauseReloadTest, PausedInTheConfigPausesOnReloadAndResumesWhenTakenBack) {
  const std::string running = WriteConfig("paused = false");
  Start(running);
  Send("before");
  ASSERT_TRUE(WaitFor([&] { return Ran("before"); }, seconds(10))) << process_->Log();

  WriteConfig("paused = true");
  Reload("job type paused by the config");
  Send("while-paused");
  std::this_thread::sleep_for(milliseconds(1500));
  EXPECT_FALSE(Ran("while-paused"));
  EXPECT_EQ(QueuedJobs(running, "work"), 1);

  // A file that does not load: logged, nothing changes, the process goes on.
  dir_.Write("firebreak.toml", "[[jobs]\ntype = ");
  Reload("config reload failed");
  std::this_thread::sleep_for(milliseconds(500));
  EXPECT_FALSE(Ran("while-paused"));

  WriteConfig("paused = false");
  Reload("job type resumed by the config");
  EXPECT_TRUE(WaitFor([&] { return Ran("while-paused"); }, seconds(10))) << process_->Log();
  EXPECT_EQ(process_->Terminate(), 0) << process_->Log();
}

TEST_P(PauseReloadTest, AStartWithPausedTrueStartsPaused) {
  const std::string config = WriteConfig("paused = true");
  Start(config);
  Send("held");
  std::this_thread::sleep_for(milliseconds(1500));
  EXPECT_FALSE(Ran("held"));
  CommandResult stats = RunFirebreak({"queue", "stats", "--json", "-c", config});
  EXPECT_NE(stats.out.find("\"paused\":true"), std::string::npos) << stats.out;
  EXPECT_EQ(process_->Terminate(), 0) << process_->Log();
}

INSTANTIATE_TEST_SUITE_P(Backends, PauseReloadTest, ::testing::ValuesIn(AllBackends()),
                         BackendName);

}  // namespace
}  // namespace firebreak::testing
