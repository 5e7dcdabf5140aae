// The quick start's example works end to end through `firebreak send`, and a
// graceful shutdown loses nothing: attempts that outlive the grace period go back
// to the queue and run again after a restart.
#include <gtest/gtest.h>

#include <fstream>

#include "harness.h"

namespace firebreak::testing {
namespace {

TEST(ExampleTest, SendLineFromMakeRunIsHandledByTheEchoBot) {
  TempDir dir;
  uint16_t port = FreePort();
  // The example config as shipped, pointed at a free port and a temp database.
  std::string config = ReadFile(SourceDir() + "/examples/echo-bot/firebreak.toml");
  ASSERT_FALSE(config.empty());
  config = ReplaceAll(config, "127.0.0.1:8080", "127.0.0.1:" + std::to_string(port));
  config = ReplaceAll(config, "var/echo-bot.db", dir.File("echo.db"));
  config = ReplaceAll(config, "127.0.0.1:8081", "127.0.0.1:0");
  config = ReplaceAll(config, "\"examples/", "\"" + SourceDir() + "/examples/");
  std::string path = dir.Write("firebreak.toml", config);

  FirebreakProcess process("run", path, dir.File("log.txt"), port);
  ASSERT_TRUE(process.Start()) << process.Log();
  auto sent = RunFirebreak({"send", "-c", path, "--source", "slack"});
  EXPECT_EQ(sent.exit_code, 0) << sent.out;
  EXPECT_NE(sent.out.find("-> 200"), std::string::npos) << sent.out;
  EXPECT_TRUE(WaitFor(
      [&] {
        std::string log = process.Log();
        return log.find("echo-bot: slack.event from slack") != std::string::npos &&
               log.find("\"msg\":\"job succeeded\"") != std::string::npos;
      },
      std::chrono::seconds(15)))
      << process.Log();
  // The same sample body sent twice is one event: `send --data` with a fixed event_id.
  std::string body =
      R"({"type":"event_callback","event_id":"EvFixed1","event":{"type":"message","text":"x"}})";
  EXPECT_EQ(RunFirebreak({"send", "-c", path, "--source", "slack", "--data", body}).exit_code, 0);
  auto again = RunFirebreak({"send", "-c", path, "--source", "slack", "--data", body});
  EXPECT_NE(again.out.find("\"duplicate\":true"), std::string::npos) << again.out;
  EXPECT_EQ(process.Terminate(), 0);
}

// Runs on every queue backend (the parameter).
class ShutdownTest : public ::testing::TestWithParam<std::string> {};

TEST_P(ShutdownTest, AttemptsOutlivingTheGraceGoBackToTheQueueAndRunAfterRestart) {
  TempDir dir;
  QueueBackend backend(GetParam(), dir);
  ASSERT_TRUE(backend.Start()) << backend.Describe();
  uint16_t port = FreePort();
  dir.Write("secret", "shutdown-secret");
  // Sleeps 2 s the first time it sees each job, longer than the 500 ms grace.
  std::string bot = dir.Write("bot.py", R"PY(
import json, sys, time, os
log = sys.argv[1]
for line in sys.stdin:
    env = json.loads(line)
    with open(log, "a") as f:
        f.write("%s %d start\n" % (env["payload"]["id"], env["attempt"]))
    marker = log + "." + env["payload"]["id"]
    if not os.path.exists(marker):
        open(marker, "w").close()
        time.sleep(2)
    with open(log, "a") as f:
        f.write("%s %d done\n" % (env["payload"]["id"], env["attempt"]))
    print(json.dumps({"id": env["id"], "ok": True}), flush=True)
)PY");
  std::string config = dir.Write("firebreak.toml", R"(
[server]
listen = "127.0.0.1:)" + std::to_string(port) + R"("
)" + backend.QueueToml() + R"(
[worker]
sidecar = "127.0.0.1:0"  # tests run in parallel: any free port
shutdown_grace = "500ms"
[[sources]]
name = "h"
kind = "hmac"
path = "/hooks/h"
secret = { file = ")" + dir.File("secret") + R"(" }
dedupe = "/id"
job = "work"
[[jobs]]
type = "work"
handler = { command = ["/usr/bin/python3", ")" + bot + R"(", ")" +
                                                       dir.File("runs.txt") + R"("] }
concurrency = 2
timeout = "10s"
)");
  FirebreakProcess process("run", config, dir.File("log.txt"), port);
  ASSERT_TRUE(process.Start()) << process.Log();
  for (const char* id : {"a", "b"}) {
    auto res =
        PostHmacSigned(port, "/hooks/h", "shutdown-secret", std::string(R"({"id":")") + id + "\"}");
    ASSERT_TRUE(res.ok() && res->status == 200);
  }
  ASSERT_TRUE(WaitFor([&] { return ReadLines(dir.File("runs.txt")).size() >= 2; },
                      std::chrono::seconds(10)));
  auto started = std::chrono::steady_clock::now();
  EXPECT_EQ(process.Terminate(), 0) << process.Log();
  // Graceful: waited the grace, not the 2 s handlers nor the 10 s timeout.
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::milliseconds(1900));
  EXPECT_NE(process.Log().find("job interrupted by shutdown"), std::string::npos);

  ASSERT_TRUE(process.Start()) << process.Log();
  ASSERT_TRUE(WaitFor(
      [&] {
        std::string runs = ReadFile(dir.File("runs.txt"));
        // Shutdown did not use up an attempt: the rerun is attempt 1 again.
        return runs.find("a 1 done") != std::string::npos &&
               runs.find("b 1 done") != std::string::npos;
      },
      std::chrono::seconds(10)))
      << ReadFile(dir.File("runs.txt")) << process.Log();
  EXPECT_EQ(process.Terminate(), 0);
}

INSTANTIATE_TEST_SUITE_P(Backends, ShutdownTest, ::testing::ValuesIn(AllBackends()), BackendName);

}  // namespace
}  // namespace firebreak::testing
