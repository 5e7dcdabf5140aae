// Acceptance 4: every event that got a 200 is handled at least once, even when
// `firebreak run` is killed with SIGKILL in the middle of the stream.
#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <set>
#include <thread>

#include "harness.h"

namespace firebreak::testing {
namespace {

constexpr char kSecret[] = "durability-secret";

TEST(DurabilityTest, NoAckedEventIsLostAcrossKill9) {
  TempDir dir;
  uint16_t port = FreePort();
  dir.Write("slack.secret", kSecret);
  std::string bot = dir.Write("bot.py", R"PY(
import json, sys
out = open(sys.argv[1], "a")
for line in sys.stdin:
    env = json.loads(line)
    out.write(env["dedupe_key"] + "\n"); out.flush()
    print(json.dumps({"id": env["id"], "ok": True}), flush=True)
)PY");
  std::string config = dir.Write("firebreak.toml", R"(
[server]
listen = "127.0.0.1:)" + std::to_string(port) + R"("

[queue]
path = ")" + dir.File("queue.db") + R"("
durability = "fsync"

[telemetry]
log_level = "warn"

[[sources]]
name = "slack"
kind = "slack"
path = "/hooks/slack"
secret = { file = ")" + dir.File("slack.secret") + R"(" }
job = "slack.event"

[[jobs]]
type = "slack.event"
handler = { command = ["/usr/bin/python3", ")" + bot + R"(", ")" +
                                                       dir.File("handled.txt") + R"("] }
concurrency = 8
timeout = "3s"
)");
  FirebreakProcess process("run", config, dir.File("log.txt"), port);
  ASSERT_TRUE(process.Start()) << process.Log();

  constexpr int kEvents = 5000;
  constexpr int kClients = 4;
  std::atomic<int> next{0}, answered{0};
  std::mutex mu;
  std::set<std::string> acked;
  int failed = 0;
  auto client = [&] {
    HttpConnection connection("127.0.0.1", port);
    for (int i = next++; i < kEvents; i = next++) {
      std::string event_id = "EvDur" + std::to_string(i);
      std::string body = R"({"type":"event_callback","event_id":")" + event_id +
                         R"(","event":{"type":"message","text":"n)" + std::to_string(i) + "\"}}";
      auto res = connection.Send("POST", "/hooks/slack",
                                 SlackHeaders(kSecret, body, NowSeconds(), "application/json"),
                                 body, std::chrono::seconds(5));
      ++answered;
      std::lock_guard lock(mu);
      if (res.ok() && res->status == 200) {
        acked.insert("slack:" + event_id);
      } else {
        ++failed;  // not acknowledged: the platform would retry it; we don't count it
      }
      if (!res.ok()) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  };
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) clients.emplace_back(client);

  // Kill -9 twice mid-stream, restarting each time.
  for (int threshold : {1500, 3500}) {
    ASSERT_TRUE(WaitFor([&] { return answered.load() >= threshold; }, std::chrono::seconds(120)));
    process.Kill9();
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    ASSERT_TRUE(process.Start()) << process.Log();
  }
  for (auto& t : clients) t.join();

  size_t acked_count;
  {
    std::lock_guard lock(mu);
    acked_count = acked.size();
  }
  EXPECT_GE(acked_count, static_cast<size_t>(kEvents / 2));  // the stream really flowed
  std::set<std::string> handled;
  bool all_handled = WaitFor(
      [&] {
        for (auto& key : ReadLines(dir.File("handled.txt"))) handled.insert(key);
        for (auto& key : acked) {
          if (!handled.count(key)) return false;
        }
        return true;
      },
      std::chrono::seconds(120));
  size_t lost = 0;
  for (auto& key : acked) lost += handled.count(key) ? 0 : 1;
  std::printf("durability: sent %d, acked %zu, not acked %d, handled %zu, lost %zu\n", kEvents,
              acked_count, failed, handled.size(), lost);
  EXPECT_TRUE(all_handled);
  EXPECT_EQ(lost, 0u);
  EXPECT_EQ(process.Terminate(), 0);
}

}  // namespace
}  // namespace firebreak::testing
