// Actions (the outbox) through the real binary, with the worker kill -9-ed at random
// points: every action reaches the upstream, always under the same Idempotency-Key, so an
// upstream that applies each key once sees exactly the effects the handler asked for.
#include <gtest/gtest.h>

#include <signal.h>

#include <cstdio>
#include <atomic>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <thread>

#include "harness.h"
#include "support/process.h"
#include "support/upstream_server.h"

namespace firebreak::testing {
namespace {

using std::chrono::milliseconds;

constexpr char kSecret[] = "actions-test-secret";

// Takes a little while (so kills land inside it), logs every run, and asks for two effects.
constexpr char kActingBot[] = R"PY(
import json, os, random, sys, time
log = sys.argv[1]
for line in sys.stdin:
    env = json.loads(line)
    event = env["payload"]["id"]
    def note(step):
        with open(log, "a") as f:
            f.write(json.dumps({"event": event, "job": env["id"], "step": step}) + "\n")
    note("started")
    wait_for = env["payload"].get("wait_for")
    deadline = time.monotonic() + 10
    while wait_for and not os.path.exists(wait_for) and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(env["payload"].get("sleep", 0 if wait_for else random.uniform(0, 0.1)))
    actions = [{"integration": "effects", "method": "POST", "path": "/effects",
                "json": {"event": event, "n": n}} for n in (0, 1)]
    print(json.dumps({"id": env["id"], "ok": True, "actions": actions}), flush=True)
    note("answered")
)PY";

// An upstream that applies each Idempotency-Key once, like Stripe or Slack's own dedupe.
class EffectsUpstream {
 public:
  EffectsUpstream()
      : server_([this](const UpstreamRequest& req) { return Apply(req); }, 4) {}

  UpstreamReply Apply(const UpstreamRequest& req) {
    nlohmann::json body = nlohmann::json::parse(req.body, nullptr, false);
    std::lock_guard lock(mu_);
    ++requests_;
    const std::string key = req.Header("idempotency-key");
    if (key.empty() || !body.is_object()) return UpstreamReply{400, {}, "{\"error\":\"no key\"}"};
    const std::string effect = body["event"].get<std::string>() + "#" + std::to_string(body["n"].get<int>());
    keys_by_effect_[effect].insert(key);
    if (applied_.emplace(key, effect).second) ++effects_[body["event"].get<std::string>()];
    UpstreamReply reply;
    reply.delay = milliseconds(rng_() % 30);  // so some kills land mid-call
    return reply;
  }

  std::string Url() const { return server_.Url(); }
  // Events with both of their effects applied.
  size_t EventsComplete() {
    std::lock_guard lock(mu_);
    size_t n = 0;
    for (const auto& [event, count] : effects_) n += count == 2 ? 1 : 0;
    return n;
  }

  std::mutex mu_;
  int64_t requests_ = 0;                                     // guarded by mu_
  std::map<std::string, std::string> applied_;               // key → effect, guarded by mu_
  std::map<std::string, int> effects_;                       // event → effects applied
  std::map<std::string, std::set<std::string>> keys_by_effect_;  // effect → keys seen
  std::mt19937 rng_{42};
  UpstreamServer server_;  // last: stops before the maps go
};

// A `run` config: an hmac source "test" (dedupe on /id) feeding job type "work", run by
// `handler` (a TOML command array), and the integration `name` at `base_url`.
std::string ActionsConfig(const TempDir& dir, uint16_t port, const std::string& queue_toml,
                          const std::string& handler, const std::string& job_keys,
                          const std::string& name, const std::string& base_url,
                          const std::string& integration_keys) {
  dir.Write("secret", kSecret);
  return dir.Write("firebreak.toml", R"([server]
listen = "127.0.0.1:)" + std::to_string(port) + R"("
threads = 1
)" + queue_toml + R"(
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
handler = { command = )" + handler + R"( }
)" + job_keys + R"(
[[integrations]]
name = ")" + name + R"("
base_url = ")" + base_url + R"("
)" + integration_keys);
}

std::string Python(const std::string& script, const std::string& arg = "") {
  return "[\"/usr/bin/python3\", \"" + script + "\"" + (arg.empty() ? "" : ", \"" + arg + "\"") + "]";
}

class ActionsTest : public ::testing::TestWithParam<std::string> {};

TEST_P(ActionsTest, EveryActionIsAppliedOnceUnderOneKeyAcrossRandomKill9s) {
  TempDir dir;
  QueueBackend backend(GetParam(), dir);
  ASSERT_TRUE(backend.Start()) << backend.Describe();
  EffectsUpstream upstream;
  const uint16_t port = FreePort();
  const std::string bot = dir.Write("bot.py", kActingBot);
  const std::string runs = dir.File("runs.ndjson");
  const std::string config = ActionsConfig(
      dir, port, backend.QueueToml() + "[telemetry]\nlog_level = \"warn\"\n", Python(bot, runs),
      "concurrency = 4\ntimeout = \"1s\"\nmax_attempts = 20\n", "effects", upstream.Url(),
      "timeout = \"500ms\"\nmax_concurrency = 8\nretry = { attempts = 2, backoff = [\"100ms\"] }\n");

  std::mt19937 rng(GetParam() == "sqlite" ? 7 : 11);
  constexpr int kCycles = 6;
  constexpr int kPerCycle = 25;
  int events = 0;
  int log_index = 0;
  for (int cycle = 0; cycle < kCycles; ++cycle) {
    FirebreakProcess process("run", config, dir.File("log" + std::to_string(log_index++) + ".txt"),
                             port);
    ASSERT_TRUE(process.Start()) << process.Log();
    for (int i = 0; i < kPerCycle; ++i, ++events) {
      auto res = PostHmacSigned(port, "/hooks/test", kSecret,
                                "{\"id\":\"e" + std::to_string(events) + "\"}");
      ASSERT_TRUE(res.ok() && res->status == 200) << (res.ok() ? res->body : res.status().ToString());
    }
    // Somewhere inside handlers, commits, or action calls.
    std::this_thread::sleep_for(milliseconds(30 + rng() % 300));
    process.Kill9();
  }
  // The last process runs undisturbed until everything settled: expired leases come back
  // (timeout + 5 s) and every action is delivered.
  FirebreakProcess last("run", config, dir.File("final.txt"), port);
  ASSERT_TRUE(last.Start()) << last.Log();
  EXPECT_TRUE(WaitFor([&] { return upstream.EventsComplete() == static_cast<size_t>(events); },
                      milliseconds(60'000)))
      << upstream.EventsComplete() << " of " << events << " events have both effects";
  EXPECT_TRUE(WaitFor([&] { return QueuedJobs(config) == 0; }, milliseconds(20'000)));
  ASSERT_EQ(last.Terminate(), 0);

  std::lock_guard lock(upstream.mu_);
  EXPECT_EQ(upstream.applied_.size(), static_cast<size_t>(2 * events));
  for (const auto& [event, count] : upstream.effects_) EXPECT_EQ(count, 2) << event;
  EXPECT_EQ(upstream.keys_by_effect_.size(), static_cast<size_t>(2 * events));
  for (const auto& [effect, keys] : upstream.keys_by_effect_) {
    EXPECT_EQ(keys.size(), 1u) << effect << " was sent under " << keys.size() << " keys";
  }
  // How much crash recovery this run exercised.
  std::map<std::string, std::set<std::string>> jobs_run;
  std::map<std::string, int> started, answered;
  for (const std::string& line : ReadLines(runs)) {
    auto run = nlohmann::json::parse(line, nullptr, false);
    if (!run.is_object()) continue;
    jobs_run[run["event"]].insert(run["job"]);
    ++(run["step"] == "started" ? started : answered)[run["event"]];
  }
  int reruns = 0;
  int answered_twice = 0;  // actions returned, then lost with the process before the commit
  for (int i = 0; i < events; ++i) {
    std::string event = "e" + std::to_string(i);
    EXPECT_EQ(jobs_run[event].size(), 1u) << event << ": one job per event (ingress dedupe)";
    reruns += std::max(0, started[event] - 1);
    answered_twice += answered[event] > 1 ? 1 : 0;
  }
  std::cout << GetParam() << ": " << events << " events, " << kCycles << " kill -9s, " << reruns
            << " handler reruns after a crash (" << answered_twice
            << " events whose actions were returned twice), " << upstream.requests_
            << " upstream requests for " << upstream.applied_.size()
            << " effects, each applied once under one key\n";
  auto dead = RunFirebreak({"dlq", "list", "-c", config});
  EXPECT_EQ(dead.out.find("action:"), std::string::npos) << dead.out;
}

// The window that matters most, made certain: the handler answered with its actions,
// but the process died before the outcome committed. (A helper holds the SQLite write
// lock, so the commit waits; then firebreak is kill -9-ed.) The job runs again after its
// lease and answers the same actions: they are stored once, each applied once.
TEST(ActionsCrashTest, AHandlerRerunAfterItsAnswerWasLostCreatesNoNewActions) {
  TempDir dir;
  EffectsUpstream upstream;
  const uint16_t port = FreePort();
  const std::string bot = dir.Write("bot.py", kActingBot);
  const std::string runs = dir.File("runs.ndjson");
  const std::string db = dir.File("q.db");
  const std::string config =
      ActionsConfig(dir, port, "[queue]\npath = \"" + db + "\"\n", Python(bot, runs),
                    // 5 s: the handler waits for the helper below, a python start that
                    // can take seconds on a loaded machine, before it answers.
                    "timeout = \"5s\"\n", "effects", upstream.Url(), "");
  auto answers = [&] {
    int n = 0;
    for (const std::string& line : ReadLines(runs)) n += line.find("answered") != std::string::npos;
    return n;
  };
  {
    FirebreakProcess process("run", config, dir.File("log1.txt"), port);
    ASSERT_TRUE(process.Start()) << process.Log();
    // Once the handler has started (its claim committed), a helper takes the write lock,
    // so the outcome it answers with cannot commit. The handler answers only once the
    // helper's marker file says it holds the lock.
    const std::string marker = dir.File("locked");
    auto res = PostHmacSigned(port, "/hooks/test", kSecret,
                              "{\"id\":\"lost\",\"wait_for\":\"" + marker + "\"}");
    ASSERT_TRUE(res.ok() && res->status == 200);
    ASSERT_TRUE(WaitFor([&] { return ReadFile(runs).find("started") != std::string::npos; },
                        milliseconds(10'000)));
    pid_t locker = Spawn({"/usr/bin/python3", "-c",
                          "import sqlite3, sys, time\n"
                          "c = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)\n"
                          "c.execute('BEGIN IMMEDIATE')\n"
                          "open(sys.argv[2], 'w').write('1')\n"
                          "time.sleep(60)\n",
                          db, marker},
                         dir.File("locker.txt"));
    ASSERT_GT(locker, 0);
    ASSERT_TRUE(WaitFor([&] { return !ReadFile(marker).empty(); }, milliseconds(10'000)));
    ASSERT_TRUE(WaitFor([&] { return answers() == 1; }, milliseconds(10'000)))
        << "the handler should have answered";
    std::this_thread::sleep_for(milliseconds(300));  // the outcome waits on the lock
    process.Kill9();
    kill(locker, SIGKILL);
    WaitExit(locker, milliseconds(5000));
  }
  {
    std::lock_guard lock(upstream.mu_);
    EXPECT_EQ(upstream.requests_, 0) << "nothing may have been sent: the outcome never committed";
  }
  FirebreakProcess again("run", config, dir.File("log2.txt"), port);
  ASSERT_TRUE(again.Start()) << again.Log();
  EXPECT_TRUE(WaitFor([&] { return upstream.EventsComplete() == 1; }, milliseconds(20'000)))
      << again.Log();
  EXPECT_EQ(answers(), 2) << "the job ran again after its lease expired";
  EXPECT_TRUE(WaitFor([&] { return QueuedJobs(config) == 0; }, milliseconds(10'000)));
  EXPECT_EQ(again.Terminate(), 0);
  std::lock_guard lock(upstream.mu_);
  EXPECT_EQ(upstream.applied_.size(), 2u);
  EXPECT_EQ(upstream.requests_, 2) << "each action sent once";
  for (const auto& [effect, keys] : upstream.keys_by_effect_) EXPECT_EQ(keys.size(), 1u) << effect;
}

INSTANTIATE_TEST_SUITE_P(Backends, ActionsTest, ::testing::ValuesIn(AllBackends()), BackendName);

// Malformed actions dead-letter the job with the reason instead of being dropped; a 4xx
// from the upstream dead-letters the action; an open breaker defers without spending
// attempts.
TEST(ActionsErrorsTest, BadActionsAndUpstreamRefusalsEndInTheDeadLetterQueue) {
  TempDir dir;
  UpstreamServer upstream([](const UpstreamRequest& req) {
    if (req.target == "/reject") return UpstreamReply{422, {}, "{\"error\":\"invalid_blocks\"}"};
    return UpstreamReply{};
  });
  const uint16_t port = FreePort();
  const std::string bot = dir.Write("bot.py", R"PY(
import json, sys
for line in sys.stdin:
    env = json.loads(line)
    print(json.dumps({"id": env["id"], "ok": True, "actions": env["payload"]["actions"]}), flush=True)
)PY");
  const std::string config = ActionsConfig(
      dir, port, "[queue]\npath = \"" + dir.File("q.db") + "\"\n", Python(bot),
      "max_attempts = 2\nbackoff = { base = \"50ms\", factor = 1, max = \"50ms\" }\n", "api",
      upstream.Url(), "retry = { attempts = 1 }\n");
  FirebreakProcess process("run", config, dir.File("log.txt"), port);
  ASSERT_TRUE(process.Start()) << process.Log();
  auto send = [&](const std::string& id, const std::string& actions) {
    auto res = PostHmacSigned(port, "/hooks/test", kSecret,
                              "{\"id\":\"" + id + "\",\"actions\":" + actions + "}");
    ASSERT_TRUE(res.ok() && res->status == 200);
  };
  send("unknown", R"([{"integration":"nope","path":"/x"}])");
  send("climbing", R"([{"integration":"api","path":"/a/../../admin"}])");
  send("refused", R"([{"integration":"api","path":"/reject","json":{"blocks":[]}}])");
  send("fine", R"([{"integration":"api","path":"/ok","json":{"text":"hi"}}])");
  ASSERT_TRUE(WaitFor(
      [&] {
        auto list = RunFirebreak({"dlq", "list", "-c", config});
        return list.out.find("no integration named") != std::string::npos &&
               list.out.find("segments") != std::string::npos &&
               list.out.find("action:api") != std::string::npos;
      },
      milliseconds(20'000)))
      << RunFirebreak({"dlq", "list", "-c", config}).out << process.Log();
  std::string log = process.Log();
  EXPECT_NE(log.find("invalid actions: action 0: no integration named \\\"nope\\\""), std::string::npos)
      << log;
  EXPECT_NE(log.find("must not contain . or .. segments"), std::string::npos);
  EXPECT_NE(log.find("HTTP 422"), std::string::npos);
  EXPECT_TRUE(WaitFor(
      [&] {
        for (const UpstreamRequest& req : upstream.Requests()) {
          if (req.target == "/ok") return true;
        }
        return false;
      },
      milliseconds(10'000)));
  EXPECT_EQ(process.Terminate(), 0);
}

// An upstream outage opens the breaker: actions wait it out (deferred, attempts not
// spent) instead of exhausting max_attempts into the DLQ, and go out once it is back.
TEST(ActionsErrorsTest, AnOpenBreakerDefersActionsInsteadOfDeadLetteringThem) {
  TempDir dir;
  std::atomic<bool> healthy{false};
  UpstreamServer upstream([&](const UpstreamRequest&) {
    return healthy ? UpstreamReply{} : UpstreamReply{500, {}, "{\"error\":\"down\"}"};
  });
  const uint16_t port = FreePort();
  const std::string bot = dir.Write("bot.py", R"PY(
import json, sys
for line in sys.stdin:
    env = json.loads(line)
    action = {"integration": "api", "path": "/notify", "json": {"event": env["payload"]["id"]}}
    print(json.dumps({"id": env["id"], "ok": True, "actions": [action]}), flush=True)
)PY");
  const std::string config = ActionsConfig(
      dir, port, "[queue]\npath = \"" + dir.File("q.db") + "\"\n", Python(bot),
      "max_attempts = 3\nbackoff = { base = \"100ms\", factor = 1, max = \"100ms\" }\n", "api",
      upstream.Url(),
      "retry = { attempts = 1 }\nbreaker = { failure_rate = 0.5, min_calls = 2, window = \"30s\", "
      "open_for = \"1s\" }\n");
  FirebreakProcess process("run", config, dir.File("log.txt"), port);
  ASSERT_TRUE(process.Start()) << process.Log();
  for (int i = 0; i < 5; ++i) {
    auto res = PostHmacSigned(port, "/hooks/test", kSecret, "{\"id\":\"n" + std::to_string(i) + "\"}");
    ASSERT_TRUE(res.ok() && res->status == 200);
  }
  // Down for 4 s: far more than 3 attempts' worth of 100 ms backoff.
  std::this_thread::sleep_for(milliseconds(4000));
  EXPECT_NE(process.Log().find("\"msg\":\"job deferred\""), std::string::npos) << process.Log();
  healthy = true;
  EXPECT_TRUE(WaitFor([&] { return QueuedJobs(config) == 0; }, milliseconds(20'000)))
      << process.Log();
  auto dead = RunFirebreak({"dlq", "list", "-c", config});
  EXPECT_EQ(dead.out.find("action:api"), std::string::npos) << dead.out;
  std::string scrape = ScrapeMetrics(port);
  EXPECT_EQ(MetricValue(scrape, "firebreak_jobs_total",
                        {"job_type=\"action:api\"", "outcome=\"succeeded\""}),
            5);
  EXPECT_GT(MetricValue(scrape, "firebreak_integration_requests_total",
                        {"integration=\"api\"", "outcome=\"rejected_open\""}),
            0);
  EXPECT_EQ(process.Terminate(), 0);
}

}  // namespace
}  // namespace firebreak::testing
