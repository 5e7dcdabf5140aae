// Issue 17: a handler's "enqueue" stores jobs of other types with its success, delayed as
// asked (both backends); a malformed entry dead-letters the job with the reason.
#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <sstream>
#include <string>

#include "harness.h"

namespace firebreak::testing {
namespace {

using std::chrono::milliseconds;

constexpr char kSecret[] = "enqueue-test-secret";

// "work": answers with the event's own "enqueue" entries.
constexpr char kWorkBot[] = R"PY(
import json, sys
for line in sys.stdin:
    env = json.loads(line)
    print(json.dumps({"id": env["id"], "ok": True, "enqueue": env["payload"]["enqueue"]}), flush=True)
)PY";

// "later": appends "<payload.from> <now ms> <parent header>" to argv[1].
constexpr char kLaterBot[] = R"PY(
import fcntl, json, sys, time
for line in sys.stdin:
    env = json.loads(line)
    with open(sys.argv[1], "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        f.write("%s %d %s\n" % (env["payload"]["from"], int(time.time() * 1000),
                                env["headers"].get("x-firebreak-parent-job", "-")))
    print(json.dumps({"id": env["id"], "ok": True}), flush=True)
)PY";

class EnqueueTest : public ::testing::TestWithParam<std::string> {};

TEST_P(EnqueueTest, AHandlerEnqueuesADelayedJobWithItsSuccessOnce) {
  TempDir dir;
  QueueBackend backend(GetParam(), dir);
  ASSERT_TRUE(backend.Start()) << backend.Describe();
  dir.Write("secret", kSecret);
  dir.Write("work.py", kWorkBot);
  dir.Write("later.py", kLaterBot);
  const uint16_t port = FreePort();
  const std::string config = dir.Write("firebreak.toml", R"([server]
listen = "127.0.0.1:)" + std::to_string(port) + R"("
)" + backend.QueueToml() + R"(
[worker]
sidecar = "127.0.0.1:0"
[[sources]]
name = "test"
kind = "hmac"
path = "/hooks/test"
secret = { file = ")" + dir.File("secret") + R"(" }
dedupe = "/id"
job = "work"
[[jobs]]
type = "work"
handler = { command = ["/usr/bin/python3", ")" + dir.File("work.py") + R"("] }
max_attempts = 1
[[jobs]]
type = "later"
handler = { command = ["/usr/bin/python3", ")" + dir.File("later.py") + R"(", ")" +
                                                 dir.File("later.txt") + R"("] }
)");
  FirebreakProcess process("run", config, dir.File("log.txt"), port);
  ASSERT_TRUE(process.Start()) << process.Log();

  const int64_t sent_at = NowMs();
  auto send = [&](const std::string& id, const std::string& enqueue) {
    auto res = PostHmacSigned(port, "/hooks/test", kSecret,
                              "{\"id\":\"" + id + "\",\"enqueue\":" + enqueue + "}");
    ASSERT_TRUE(res.ok() && res->status == 200) << (res.ok() ? res->body : res.status().ToString());
  };
  send("soon", R"([{"type":"later","payload":{"from":"soon"}}])");
  send("delayed", R"([{"type":"later","payload":{"from":"delayed"},"delay":"1500ms"},
                      {"type":"later","payload":{"from":"delayed-twice"},"delay":1500,"key":"k1"}])");
  send("bad", R"([{"type":"nope"}])");

  auto runs = [&] {
    std::map<std::string, std::pair<int, int64_t>> out;  // from -> (runs, last ran at)
    for (const std::string& line : ReadLines(dir.File("later.txt"))) {
      std::istringstream in(line);
      std::string from, parent;
      int64_t at = 0;
      in >> from >> at >> parent;
      out[from].first++;
      out[from].second = at;
      EXPECT_NE(parent, "-") << "the enqueued job names its parent";
    }
    return out;
  };
  ASSERT_TRUE(WaitFor([&] { return runs().size() == 3; }, milliseconds(15'000)))
      << process.Log();
  auto seen = runs();
  for (const auto& [from, run] : seen) EXPECT_EQ(run.first, 1) << from;
  EXPECT_LT(seen["soon"].second - sent_at, 1'500) << "no delay asked";
  EXPECT_GE(seen["delayed"].second - sent_at, 1'500) << "ran before its delay";
  EXPECT_GE(seen["delayed-twice"].second - sent_at, 1'500);
  // The malformed entry dead-letters its job, with the reason.
  ASSERT_TRUE(WaitFor(
      [&] {
        return RunFirebreak({"dlq", "list", "-c", config}).out.find("no [[jobs]] type") !=
               std::string::npos;
      },
      milliseconds(10'000)))
      << RunFirebreak({"dlq", "list", "-c", config}).out;
  EXPECT_NE(process.Log().find("invalid enqueue: enqueue 0: no [[jobs]] type"), std::string::npos);
  EXPECT_EQ(process.Terminate(), 0);
}

INSTANTIATE_TEST_SUITE_P(Backends, EnqueueTest, ::testing::ValuesIn(AllBackends()), BackendName);

}  // namespace
}  // namespace firebreak::testing
