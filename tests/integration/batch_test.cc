// Issue 17, batching, on both backends: `batch = { max = 50, wait = "1s" }` hands the
// handler up to 50 jobs per run. A backlog of 500 events on two worker processes runs in
// full batches, each job exactly once; a trickle of 3 is one batch after the wait; a url
// handler's per-job "results" fail one job and finish the others; and at shutdown the
// jobs held for a batch go straight back to the queue, their attempt unspent.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "harness.h"
#include "support/upstream_server.h"

namespace firebreak::testing {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr char kSecret[] = "batch-test-secret";

// Appends "batch <size> <epoch ms> <attempt of the first job> <event id>..." per run to
// argv[1], after checking the batch envelope's shape, and answers ok for the whole run.
constexpr char kBatchBot[] = R"PY(
import fcntl, json, sys, time
path = sys.argv[1]
for line in sys.stdin:
    env = json.loads(line)
    now = int(time.time() * 1000)
    jobs = env["batch"]
    assert env["id"] == jobs[0]["id"] and env["type"] == jobs[0]["type"], line
    ids = [j["payload"]["id"] for j in jobs]
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        f.write("batch %d %d %d %s\n" % (len(ids), now, jobs[0]["attempt"], " ".join(ids)))
    time.sleep(30 if any(j["payload"].get("slow") for j in jobs) else 0.05)
    print(json.dumps({"id": env["id"], "ok": True}), flush=True)
)PY";

struct BatchRun {
  int size = 0;
  int64_t at_ms = 0;
  int attempt = 0;
  std::vector<std::string> ids;
};

std::vector<BatchRun> Runs(const std::string& path) {
  std::vector<BatchRun> runs;
  for (const std::string& line : ReadLines(path)) {
    std::istringstream in(line);
    std::string word;
    BatchRun run;
    if (!(in >> word >> run.size >> run.at_ms >> run.attempt) || word != "batch") continue;
    std::string id;
    while (in >> id) run.ids.push_back(id);
    if (static_cast<int>(run.ids.size()) != run.size) continue;  // a line being written
    runs.push_back(std::move(run));
  }
  return runs;
}

int JobsRun(const std::string& path) {
  int n = 0;
  for (const BatchRun& run : Runs(path)) n += run.size;
  return n;
}

// Jobs of `type` in `state` ("ready", "in_flight", ...) per `firebreak queue stats`; -1
// when that fails.
int64_t JobsIn(const std::string& config, const std::string& type, const std::string& state) {
  CommandResult result = RunFirebreak({"queue", "stats", "--json", "-c", config}, seconds(20));
  if (result.exit_code != 0) return -1;
  nlohmann::json stats = nlohmann::json::parse(result.out, nullptr, false);
  if (!stats.is_array()) return -1;
  for (const auto& row : stats) {
    if (row["job_type"] == type) return row[state].get<int64_t>();
  }
  return 0;
}

class BatchTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    backend_ = std::make_unique<QueueBackend>(GetParam(), dir_);
    ASSERT_TRUE(backend_->Start()) << backend_->Describe();
    dir_.Write("bot.py", kBatchBot);
    dir_.Write("hmac.secret", kSecret);
    port_ = FreePort();
  }

  // A source "chat" → job type "store" with `batch_and_handler` (its batch and handler
  // keys).
  std::string Config(const std::string& batch_and_handler, const std::string& name = "firebreak",
                     const std::string& limits = "timeout = \"10s\"\nmax_attempts = 3\n") {
    return dir_.Write(name + ".toml", R"([server]
listen = "127.0.0.1:)" + std::to_string(port_) +
                                          R"("
threads = 2
)" + backend_->QueueToml("durability = \"process\"\n") +
                                          R"(
[worker]
sidecar = "127.0.0.1:0"
shutdown_grace = "5s"

[[sources]]
name = "chat"
kind = "hmac"
path = "/hooks/chat"
secret = { file = ")" + dir_.File("hmac.secret") +
                                          R"(" }
dedupe = "/id"
job = "store"

[[jobs]]
type = "store"
)" + limits + batch_and_handler + "\n");
  }

  std::string CommandHandler() const {
    return "handler = { command = [\"/usr/bin/python3\", \"" + dir_.File("bot.py") + "\", \"" +
           dir_.File("runs.txt") + "\"] }\n";
  }

  void Send(const std::string& id, const std::string& extra = "") {
    const std::string body = R"({"id":")" + id + R"(")" + extra + "}";
    Result<HttpResponse> res = PostHmacSigned(port_, "/hooks/chat", kSecret, body);
    ASSERT_TRUE(res.ok()) << res.status().ToString();
    ASSERT_EQ(res->status, 200) << res->body;
  }

  TempDir dir_;
  std::unique_ptr<QueueBackend> backend_;
  uint16_t port_ = 0;
};

TEST_P(BatchTest, FiveHundredEventsOnTwoWorkersRunInFullBatchesEachJobOnce) {
  constexpr int kEvents = 500;
  const std::string config =
      Config("concurrency = 2\nbatch = { max = 50, wait = \"1s\" }\n" + CommandHandler());
  FirebreakProcess ingest("ingest", config, dir_.File("ingest.log"), port_);
  ASSERT_TRUE(ingest.Start()) << ingest.Log();
  std::vector<std::unique_ptr<FirebreakProcess>> workers;
  for (int i = 0; i < 2; ++i) {
    workers.push_back(std::make_unique<FirebreakProcess>(
        "worker", config, dir_.File("worker-" + std::to_string(i) + ".log"), 0));
    ASSERT_TRUE(workers.back()->Start()) << workers.back()->Log();
  }
  // The backlog: all 500 stored before any is claimed (4 senders at once).
  ASSERT_EQ(RunFirebreak({"queue", "pause", "store", "-c", config}).exit_code, 0);
  std::vector<std::thread> senders;
  for (int t = 0; t < 4; ++t) {
    senders.emplace_back([this, t] {
      for (int n = t; n < kEvents; n += 4) Send("e" + std::to_string(n));
    });
  }
  for (std::thread& sender : senders) sender.join();
  ASSERT_EQ(QueuedJobs(config, "store"), kEvents);
  ASSERT_EQ(RunFirebreak({"queue", "resume", "store", "-c", config}).exit_code, 0);
  const bool done = WaitFor([&] { return JobsRun(dir_.File("runs.txt")) >= kEvents; }, seconds(30));
  std::this_thread::sleep_for(milliseconds(300));  // a duplicate run would show by now
  for (auto& w : workers) EXPECT_EQ(w->Terminate(), 0) << w->Log();
  EXPECT_EQ(ingest.Terminate(), 0) << ingest.Log();
  ASSERT_TRUE(done) << "only " << JobsRun(dir_.File("runs.txt")) << " of " << kEvents << " ran";

  const std::vector<BatchRun> runs = Runs(dir_.File("runs.txt"));
  std::map<int, int> sizes;  // size → runs
  std::map<std::string, int> seen;
  for (const BatchRun& run : runs) {
    EXPECT_LE(run.size, 50);
    ++sizes[run.size];
    for (const std::string& id : run.ids) ++seen[id];
  }
  EXPECT_EQ(seen.size(), static_cast<size_t>(kEvents)) << "a job was lost";
  for (const auto& [id, count] : seen) EXPECT_EQ(count, 1) << id << " ran " << count << " times";
  // Each claim takes 50 per free run, so with the backlog stored every run is full; at
  // least 9 of the 10 leaves room for one split across the two workers.
  EXPECT_GE(sizes[50], 9);
  std::string distribution;
  for (const auto& [size, count] : sizes) {
    distribution += " " + std::to_string(count) + "x" + std::to_string(size);
  }
  std::cout << "[ measured ] " << runs.size() << " runs:" << distribution << "\n";
  EXPECT_EQ(QueuedJobs(config, "store"), 0);
}

TEST_P(BatchTest, ATrickleOfThreeIsOneBatchAfterTheWait) {
  const std::string config =
      Config("concurrency = 1\nbatch = { max = 50, wait = \"1s\" }\n" + CommandHandler());
  FirebreakProcess process("run", config, dir_.File("run.log"), port_);
  ASSERT_TRUE(process.Start()) << process.Log();
  // Warm up: the handler process starts with the first batch.
  Send("warm");
  ASSERT_TRUE(WaitFor([&] { return JobsRun(dir_.File("runs.txt")) == 1; }, seconds(10)))
      << process.Log();

  const int64_t sent_at = NowMs();
  for (const char* id : {"t1", "t2", "t3"}) Send(id);
  ASSERT_TRUE(WaitFor([&] { return JobsRun(dir_.File("runs.txt")) >= 4; }, seconds(10)))
      << process.Log();
  std::this_thread::sleep_for(milliseconds(1500));  // a split batch would show by now
  EXPECT_EQ(process.Terminate(), 0) << process.Log();

  const std::vector<BatchRun> runs = Runs(dir_.File("runs.txt"));
  ASSERT_EQ(runs.size(), 2u);
  const BatchRun& trickle = runs[1];
  EXPECT_EQ(trickle.ids, (std::vector<std::string>{"t1", "t2", "t3"}));
  const int64_t delay = trickle.at_ms - sent_at;
  EXPECT_GE(delay, 1000);
  EXPECT_LT(delay, 2000);
  std::cout << "[ measured ] 3 events sent; their batch reached the handler after " << delay
            << " ms (wait 1s)\n";
}

TEST_P(BatchTest, UrlHandlerResultsFailOneJobAndFinishTheRest) {
  std::mutex mu;
  std::vector<nlohmann::json> bodies;
  std::vector<std::string> job_id_headers;
  UpstreamServer bot([&](const UpstreamRequest& request) {
    nlohmann::json envelope = nlohmann::json::parse(request.body, nullptr, false);
    nlohmann::json results = nlohmann::json::array();
    if (envelope.is_object() && envelope["batch"].is_array()) {
      for (const auto& job : envelope["batch"]) {
        if (job["payload"].value("bad", false)) {
          results.push_back(
              {{"id", job["id"]}, {"ok", false}, {"error", "bad item"}, {"retry", false}});
        }
      }
    }
    std::lock_guard lock(mu);
    bodies.push_back(envelope);
    job_id_headers.push_back(request.Header("x-firebreak-job-id"));
    UpstreamReply reply;
    reply.body = nlohmann::json{{"results", results}}.dump();
    return reply;
  });
  const std::string config = Config("batch = { max = 10, wait = \"500ms\" }\nhandler = { url = \"" +
                                    bot.Url() + "/batch\" }\n");
  FirebreakProcess process("run", config, dir_.File("run.log"), port_);
  ASSERT_TRUE(process.Start()) << process.Log();
  for (int i = 0; i < 5; ++i) Send("u" + std::to_string(i), i == 2 ? ",\"bad\":true" : "");
  std::string scrape;
  const bool done = WaitFor(
      [&] {
        scrape = ScrapeMetrics(port_);
        return MetricValue(scrape, "firebreak_jobs_total",
                           {"job_type=\"store\"", "outcome=\"succeeded\""}) == 4 &&
               MetricValue(scrape, "firebreak_jobs_total",
                           {"job_type=\"store\"", "outcome=\"dead_lettered\""}) == 1;
      },
      seconds(10));
  EXPECT_TRUE(done) << scrape << process.Log();
  EXPECT_EQ(MetricValue(scrape, "firebreak_job_batch_size_count", {"job_type=\"store\""}), 1);
  EXPECT_EQ(MetricValue(scrape, "firebreak_job_batch_size_sum", {"job_type=\"store\""}), 5);
  EXPECT_EQ(process.Terminate(), 0) << process.Log();

  std::lock_guard lock(mu);
  ASSERT_EQ(bodies.size(), 1u);
  ASSERT_EQ(bodies[0]["batch"].size(), 5u);
  EXPECT_EQ(bodies[0]["id"], bodies[0]["batch"][0]["id"]);
  EXPECT_EQ(job_id_headers[0], bodies[0]["id"].get<std::string>());
  CommandResult dead = RunFirebreak({"dlq", "list", "-c", config});
  EXPECT_EQ(dead.exit_code, 0) << dead.out;
  EXPECT_NE(dead.out.find("bad item"), std::string::npos) << dead.out;
}

TEST_P(BatchTest, ShutdownReleasesHeldJobsAtOnceWithTheirAttemptUnspent) {
  const std::string waiting =
      Config("batch = { max = 50, wait = \"30s\" }\n" + CommandHandler(), "waiting");
  {
    FirebreakProcess process("run", waiting, dir_.File("run.log"), port_);
    ASSERT_TRUE(process.Start()) << process.Log();
    for (const char* id : {"h1", "h2", "h3"}) Send(id);
    ASSERT_TRUE(WaitFor([&] { return JobsIn(waiting, "store", "in_flight") == 3; }, seconds(10)))
        << process.Log();
    const auto stop_started = std::chrono::steady_clock::now();
    EXPECT_EQ(process.Terminate(), 0) << process.Log();
    EXPECT_LT(std::chrono::steady_clock::now() - stop_started, seconds(5));
    EXPECT_NE(process.Log().find("jobs held for a batch back to the queue"), std::string::npos)
        << process.Log();
  }
  // Back in the queue now, not after their lease (30s + timeout + 5s).
  EXPECT_EQ(JobsIn(waiting, "store", "in_flight"), 0);
  EXPECT_EQ(JobsIn(waiting, "store", "ready"), 3);
  EXPECT_EQ(JobsRun(dir_.File("runs.txt")), 0);

  const std::string quick =
      Config("batch = { max = 50, wait = \"100ms\" }\n" + CommandHandler(), "quick");
  FirebreakProcess process("run", quick, dir_.File("run2.log"), port_);
  ASSERT_TRUE(process.Start()) << process.Log();
  ASSERT_TRUE(WaitFor([&] { return JobsRun(dir_.File("runs.txt")) >= 3; }, seconds(10)))
      << process.Log();
  EXPECT_EQ(process.Terminate(), 0) << process.Log();
  const std::vector<BatchRun> runs = Runs(dir_.File("runs.txt"));
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_EQ(runs[0].size, 3);
  EXPECT_EQ(runs[0].attempt, 1);  // the release did not spend the claimed attempt
}

TEST_P(BatchTest, ATimeoutKillsTheRunAndEveryJobOfItTimesOut) {
  const std::string config = Config("batch = { max = 10, wait = \"200ms\" }\n" + CommandHandler(),
                                    "firebreak", "timeout = \"700ms\"\nmax_attempts = 1\n");
  FirebreakProcess process("run", config, dir_.File("run.log"), port_);
  ASSERT_TRUE(process.Start()) << process.Log();
  Send("s1", ",\"slow\":true");
  Send("s2");
  Send("s3");
  std::string scrape;
  const bool done = WaitFor(
      [&] {
        scrape = ScrapeMetrics(port_);
        return MetricValue(scrape, "firebreak_jobs_total",
                           {"job_type=\"store\"", "outcome=\"dead_lettered\""}) == 3;
      },
      seconds(10));
  EXPECT_TRUE(done) << scrape << process.Log();
  EXPECT_EQ(
      MetricValue(scrape, "firebreak_jobs_total", {"job_type=\"store\"", "outcome=\"timed_out\""}),
      3);
  EXPECT_EQ(
      MetricValue(scrape, "firebreak_jobs_total", {"job_type=\"store\"", "outcome=\"succeeded\""}),
      0);
  EXPECT_EQ(MetricValue(scrape, "firebreak_job_batch_size_count", {"job_type=\"store\""}), 1);
  EXPECT_EQ(process.Terminate(), 0) << process.Log();
  CommandResult dead = RunFirebreak({"dlq", "list", "-c", config});
  EXPECT_EQ(dead.exit_code, 0) << dead.out;
  size_t timed_out = 0;
  for (size_t at = dead.out.find("timed out after"); at != std::string::npos;
       at = dead.out.find("timed out after", at + 1)) {
    ++timed_out;
  }
  EXPECT_EQ(timed_out, 3u) << dead.out;
}

INSTANTIATE_TEST_SUITE_P(Backends, BatchTest, ::testing::ValuesIn(AllBackends()), BackendName);

}  // namespace
}  // namespace firebreak::testing
