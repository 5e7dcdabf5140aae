// What only the redis backend has: URL and connection errors at open, losing the server
// and finding it again, persistence settings checked against queue.durability, wakeups
// between queue objects, and its key space. The Queue contract itself runs for redis in
// queue_contract_test.cc. Every test starts its own redis-server (tests/support).
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <functional>
#include <future>
#include <iostream>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/status.h"
#include "config/config.h"
#include "queue/queue.h"
#include "support/redis_server.h"

namespace firebreak {
namespace {

using std::chrono::milliseconds;
using Steady = std::chrono::steady_clock;

constexpr milliseconds kCallbackBound{10'000};
// While Redis is down, an operation must report its failure within this.
constexpr milliseconds kFailFast{3'000};
// After Redis is back, the same queue object must work again within this.
constexpr milliseconds kRecovery{5'000};

std::string JobId(int n) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "job-%07d", n);
  return buf;
}

NewJob MakeJob(const std::string& id, const std::string& type = "t",
               std::vector<std::string> keys = {}) {
  NewJob job;
  job.id = id;
  job.type = type;
  job.source = "hmac";
  job.dedupe_keys = std::move(keys);
  job.payload_json = R"({"n":")" + id + R"("})";
  job.headers_json = "{}";
  job.max_attempts = 3;
  return job;
}

// Starts an asynchronous queue call and waits (bounded) for its callback; the promise is
// shared with the callback so a late one stays harmless.
template <typename T, typename Start>
std::optional<T> Await(Start start) {
  auto done = std::make_shared<std::promise<T>>();
  std::future<T> future = done->get_future();
  start([done](T value) { done->set_value(std::move(value)); });
  if (future.wait_for(kCallbackBound) != std::future_status::ready) return std::nullopt;
  return future.get();
}

EnqueueResult EnqueueSync(Queue& queue, NewJob job) {
  std::optional<EnqueueResult> result = Await<EnqueueResult>(
      [&](EnqueueCallback done) { queue.Enqueue(std::move(job), std::move(done)); });
  if (result) return *result;
  ADD_FAILURE() << "Enqueue callback did not run within " << kCallbackBound.count() << " ms";
  EnqueueResult lost;
  lost.status = Status(StatusCode::kDeadlineExceeded, "Enqueue callback lost");
  return lost;
}

Result<std::vector<Job>> ClaimSync(Queue& queue, std::vector<ClaimSlots> slots) {
  std::optional<Result<std::vector<Job>>> result = Await<Result<std::vector<Job>>>(
      [&](ClaimCallback done) { queue.Claim(std::move(slots), std::move(done)); });
  if (result) return *result;
  ADD_FAILURE() << "Claim callback did not run within " << kCallbackBound.count() << " ms";
  return Status(StatusCode::kDeadlineExceeded, "Claim callback lost");
}

bool Accepted(const EnqueueResult& r) {
  return r.status.ok() && r.outcome == EnqueueOutcome::kAccepted;
}

bool WaitUntil(const std::function<bool()>& condition, milliseconds timeout) {
  const auto deadline = Steady::now() + timeout;
  for (;;) {
    if (condition()) return true;
    if (Steady::now() >= deadline) return false;
    std::this_thread::sleep_for(milliseconds(20));
  }
}

milliseconds Since(Steady::time_point start) {
  return std::chrono::duration_cast<milliseconds>(Steady::now() - start);
}

QueueConfig RedisConfig(const std::string& url, Durability durability = Durability::kFsync) {
  QueueConfig config;
  config.backend = "redis";
  config.url = url;
  config.durability = durability;
  config.dedupe_ttl = milliseconds(60'000);
  config.max_depth = 100'000;
  return config;
}

// A loopback TCP socket bound to a free port. Listening, it accepts connections into the
// kernel backlog but never answers them (a hung peer); not listening, connects are refused.
class LoopbackSocket {
 public:
  explicit LoopbackSocket(bool listen_on_it) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd_ < 0 || bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) return;
    socklen_t len = sizeof addr;
    if (getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return;
    port_ = ntohs(addr.sin_port);
    if (listen_on_it && listen(fd_, 16) != 0) port_ = 0;
  }
  ~LoopbackSocket() { Close(); }
  LoopbackSocket(const LoopbackSocket&) = delete;
  LoopbackSocket& operator=(const LoopbackSocket&) = delete;

  // Closing a listener resets the connections waiting in its backlog.
  void Close() {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
  }
  uint16_t port() const { return port_; }

 private:
  int fd_ = -1;
  uint16_t port_ = 0;
};

struct TimedOpen {
  std::optional<Result<std::unique_ptr<Queue>>> result;  // nullopt: still blocked at `bound`
  milliseconds elapsed{0};
};

// Runs OpenQueue on its own thread and stops waiting at `bound`, so a hang fails the test
// instead of hanging it; then `unblock` (e.g. closing a silent peer) lets it be joined.
TimedOpen OpenWithin(const QueueConfig& config, Clock& clock, milliseconds bound,
                     const std::function<void()>& unblock = {}) {
  std::promise<Result<std::unique_ptr<Queue>>> done;
  std::future<Result<std::unique_ptr<Queue>>> future = done.get_future();
  const auto start = Steady::now();
  std::thread opener([&] { done.set_value(OpenQueue(config, clock)); });
  TimedOpen out;
  if (future.wait_for(bound) == std::future_status::ready) {
    out.elapsed = Since(start);
    out.result = future.get();
  } else {
    out.elapsed = Since(start);
    if (unblock) unblock();
  }
  opener.join();
  return out;
}

std::unique_ptr<Queue> OpenOk(const QueueConfig& config, Clock& clock) {
  Result<std::unique_ptr<Queue>> queue = OpenQueue(config, clock);
  EXPECT_TRUE(queue.ok()) << queue.status().ToString();
  return queue.ok() ? std::move(*queue) : nullptr;
}

int64_t ReadyOf(Queue& queue, const std::string& type) {
  Result<std::vector<TypeDepth>> stats = queue.Stats();
  EXPECT_TRUE(stats.ok()) << stats.status().ToString();
  if (!stats.ok()) return -1;
  for (const TypeDepth& depth : *stats) {
    if (depth.type == type) return depth.ready;
  }
  return 0;
}

class RedisQueueTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(testing::RedisServerAvailable()) << "redis-server is not on PATH";
  }
  FakeClock clock_;
};

TEST_F(RedisQueueTest, BadUrlIsRejectedAtOnce) {
  for (const std::string url :
       {"http://127.0.0.1:6379/0", "redis://127.0.0.1:0/0", "redis://127.0.0.1:6379/zero",
        "redis://127.0.0.1:6379/0?timeout=1", "not a url"}) {
    SCOPED_TRACE(url);
    TimedOpen open = OpenWithin(RedisConfig(url), clock_, kFailFast);
    ASSERT_TRUE(open.result.has_value())
        << "OpenQueue still blocked after " << kFailFast.count() << " ms";
    ASSERT_FALSE(open.result->ok());
    EXPECT_EQ(open.result->status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(open.result->status().message().find(url), std::string::npos)
        << open.result->status().message();
  }
}

TEST_F(RedisQueueTest, RefusedPortFailsQuicklyWithUnavailable) {
  LoopbackSocket closed_port(/*listen_on_it=*/false);
  ASSERT_NE(closed_port.port(), 0);
  const std::string port = std::to_string(closed_port.port());
  TimedOpen open = OpenWithin(RedisConfig("redis://127.0.0.1:" + port + "/0"), clock_, kFailFast);
  ASSERT_TRUE(open.result.has_value())
      << "OpenQueue still blocked after " << kFailFast.count() << " ms";
  ASSERT_FALSE(open.result->ok());
  EXPECT_EQ(open.result->status().code(), StatusCode::kUnavailable);
  EXPECT_NE(open.result->status().message().find(port), std::string::npos)
      << open.result->status().message();
  std::cout << "[ report   ] refused port: OpenQueue failed in " << open.elapsed.count() << " ms\n";
}

// A peer that accepts the TCP connection but never answers (a hung Redis, a wrong service
// behind a proxy): Open must time out on its own, not wait forever.
TEST_F(RedisQueueTest, SilentPeerTimesOutInsteadOfHanging) {
  LoopbackSocket silent(/*listen_on_it=*/true);
  ASSERT_NE(silent.port(), 0);
  const std::string port = std::to_string(silent.port());
  constexpr milliseconds kBound{10'000};
  TimedOpen open = OpenWithin(RedisConfig("redis://127.0.0.1:" + port + "/0"), clock_, kBound,
                              [&] { silent.Close(); });
  ASSERT_TRUE(open.result.has_value())
      << "OpenQueue hung on a silent peer for " << kBound.count() << " ms";
  ASSERT_FALSE(open.result->ok());
  EXPECT_EQ(open.result->status().code(), StatusCode::kUnavailable);
  EXPECT_NE(open.result->status().message().find(port), std::string::npos)
      << open.result->status().message();
  std::cout << "[ report   ] silent peer: OpenQueue failed in " << open.elapsed.count() << " ms\n";
}

// Redis dies (kill -9) under a running queue object: operations fail fast with a non-ok
// status (ingress answers 503, never 200), and once Redis is back on the same port and
// AOF dir, the same object reconnects by itself and every job it accepted is still there.
TEST_F(RedisQueueTest, ServerKilledFailsFastThenRecoversWithAcceptedJobs) {
  testing::RedisServerOptions options;
  options.appendfsync = "always";
  testing::RedisServer server(options);
  ASSERT_TRUE(server.Start()) << server.Log();
  auto queue = OpenOk(RedisConfig(server.Url()), clock_);
  ASSERT_NE(queue, nullptr);
  EXPECT_EQ(queue->DurabilityShortfall(), "");

  constexpr int kBefore = 20;
  for (int i = 0; i < kBefore; ++i) {
    ASSERT_TRUE(Accepted(EnqueueSync(*queue, MakeJob(JobId(i), "t", {"k" + std::to_string(i)}))));
  }
  // One of them in flight at the kill: it must come back in flight, lease intact.
  Result<std::vector<Job>> held = ClaimSync(*queue, {{"t", 1, 60'000}});
  ASSERT_TRUE(held.ok()) << held.status().ToString();
  ASSERT_EQ(held->size(), 1u);

  server.Kill9();

  for (int i = 0; i < 3; ++i) {
    const auto start = Steady::now();
    EnqueueResult down = EnqueueSync(*queue, MakeJob(JobId(100 + i), "t", {"k-down"}));
    EXPECT_FALSE(down.status.ok()) << "enqueue #" << i << " while Redis is down";
    EXPECT_FALSE(Accepted(down));
    EXPECT_LT(Since(start), kFailFast)
        << "enqueue #" << i << " took " << Since(start).count() << " ms to fail";
  }
  {
    const auto start = Steady::now();
    EXPECT_FALSE(queue->Health().ready);
    EXPECT_LT(Since(start), milliseconds(10)) << "Health took " << Since(start).count() << " ms";
  }
  {
    const auto start = Steady::now();
    EXPECT_FALSE(ClaimSync(*queue, {{"t", 10, 1000}}).ok());
    EXPECT_LT(Since(start), kFailFast) << "Claim took " << Since(start).count() << " ms to fail";
  }
  {
    const auto start = Steady::now();
    EXPECT_FALSE(queue->Stats().ok());
    EXPECT_LT(Since(start), kFailFast) << "Stats took " << Since(start).count() << " ms to fail";
  }

  ASSERT_TRUE(server.Start()) << server.Log();
  const auto restarted = Steady::now();
  // Claims of an unused type go through the same path as Enqueue; the first ok one means
  // the object reconnected.
  bool recovered = WaitUntil(
      [&] {
        return ClaimSync(*queue, {{"probe", 1, 1000}}).ok() && queue->Health().ready;
      },
      kRecovery);
  ASSERT_TRUE(recovered) << "the queue did not reconnect within " << kRecovery.count() << " ms";
  std::cout << "[ report   ] reconnected " << Since(restarted).count()
            << " ms after Redis was back\n";

  for (int i = 0; i < kBefore; ++i) {
    Result<Job> job = queue->GetJob(JobId(i));
    ASSERT_TRUE(job.ok()) << JobId(i) << ": " << job.status().ToString();
  }
  Result<Job> in_flight = queue->GetJob((*held)[0].id);
  ASSERT_TRUE(in_flight.ok());
  EXPECT_EQ(in_flight->state, JobState::kInFlight);
  EXPECT_EQ(in_flight->lease_until_ms, (*held)[0].lease_until_ms);
  EXPECT_EQ(ReadyOf(*queue, "t"), kBefore - 1);
  // Their dedupe keys survived with them...
  EnqueueResult dup = EnqueueSync(*queue, MakeJob("again", "t", {"k0"}));
  ASSERT_TRUE(dup.status.ok()) << dup.status.ToString();
  EXPECT_EQ(dup.outcome, EnqueueOutcome::kDuplicate);
  EXPECT_EQ(dup.job_id, JobId(0));
  // ...and nothing of the failed enqueues was stored, not even their key.
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(queue->GetJob(JobId(100 + i)).status().code(), StatusCode::kNotFound);
  }
  EXPECT_TRUE(Accepted(EnqueueSync(*queue, MakeJob(JobId(200), "t", {"k-down"}))));
  Result<std::vector<Job>> claimed = ClaimSync(*queue, {{"t", 100, 1000}});
  ASSERT_TRUE(claimed.ok()) << claimed.status().ToString();
  EXPECT_EQ(claimed->size(), static_cast<size_t>(kBefore));  // 19 from before + JobId(200)
}

// Enqueues run back to back while Redis is killed mid-stream: every job acknowledged as
// accepted before the kill is in the AOF (appendfsync always) after the restart.
TEST_F(RedisQueueTest, JobsAcceptedUnderLoadSurviveKill) {
  testing::RedisServerOptions options;
  options.appendfsync = "always";
  testing::RedisServer server(options);
  ASSERT_TRUE(server.Start()) << server.Log();
  auto queue = OpenOk(RedisConfig(server.Url()), clock_);
  ASSERT_NE(queue, nullptr);

  struct Shared {
    std::mutex mu;
    std::vector<std::string> accepted;  // guarded by mu
    std::atomic<int> answered{0};
  };
  auto shared = std::make_shared<Shared>();
  std::atomic<bool> stop{false};
  std::atomic<int> submitted{0};
  // Many enqueues in flight at once, so the kill lands between submit and reply.
  std::thread producer([&] {
    for (int i = 0; !stop.load(); ++i) {
      queue->Enqueue(MakeJob(JobId(i), "t", {"k" + std::to_string(i)}), [shared](EnqueueResult r) {
        if (Accepted(r)) {
          std::lock_guard lock(shared->mu);
          shared->accepted.push_back(r.job_id);
        }
        shared->answered.fetch_add(1);
      });
      submitted.fetch_add(1);
      if (i % 50 == 49) std::this_thread::sleep_for(milliseconds(1));
    }
  });
  const bool under_load = WaitUntil(
      [&] {
        std::lock_guard lock(shared->mu);
        return shared->accepted.size() >= 2000;
      },
      kCallbackBound);
  server.Kill9();
  std::vector<std::string> acked_at_kill;
  {
    std::lock_guard lock(shared->mu);
    acked_at_kill = shared->accepted;
  }
  std::this_thread::sleep_for(milliseconds(300));  // let enqueues fail against the dead server
  stop = true;
  producer.join();
  ASSERT_TRUE(under_load) << "only " << acked_at_kill.size() << " enqueues accepted in "
                          << kCallbackBound.count() << " ms before the kill";
  // Every callback runs exactly once, also for the enqueues the kill cut off.
  EXPECT_TRUE(WaitUntil([&] { return shared->answered.load() == submitted.load(); }, kFailFast))
      << shared->answered.load() << " of " << submitted.load() << " callbacks ran";

  ASSERT_TRUE(server.Start()) << server.Log();
  ASSERT_TRUE(WaitUntil(
      [&] {
        return ClaimSync(*queue, {{"probe", 1, 1000}}).ok();
      },
      kRecovery))
      << "the queue did not reconnect within " << kRecovery.count() << " ms";
  std::vector<std::string> acked;
  {
    std::lock_guard lock(shared->mu);
    acked = shared->accepted;
  }
  ASSERT_GE(acked.size(), acked_at_kill.size());
  int missing = 0;
  for (const std::string& id : acked) {
    Result<Job> job = queue->GetJob(id);
    if (!job.ok()) {
      if (++missing <= 5) {
        ADD_FAILURE() << "accepted job " << id << " lost: " << job.status().ToString();
      }
    }
  }
  EXPECT_EQ(missing, 0);
  std::cout << "[ report   ] " << acked_at_kill.size() << " accepted before the kill, "
            << acked.size() << " in all, " << missing << " missing after restart\n";
}

// Claims every ready job of `type`, as a worker does before it waits for a wakeup.
void Drain(Queue& worker, const std::string& type) {
  for (int i = 0; i < 100; ++i) {
    Result<std::vector<Job>> claimed = ClaimSync(worker, {{type, 100, 60'000}});
    if (!claimed.ok() || claimed->empty()) return;
  }
}

// A worker's queue object learns of runnable jobs another process stored (through
// Redis), and still does after Redis restarted. Like a real worker it claims until
// nothing is left before it waits: a store may wake idle workers only for the job that
// makes its type runnable again, not for every job.
TEST_F(RedisQueueTest, WakeupCrossesQueueObjectsAndSurvivesRestart) {
  testing::RedisServer server;
  ASSERT_TRUE(server.Start()) << server.Log();
  auto ingest = OpenOk(RedisConfig(server.Url()), clock_);
  auto worker = OpenOk(RedisConfig(server.Url()), clock_);
  ASSERT_NE(ingest, nullptr);
  ASSERT_NE(worker, nullptr);
  auto wakeups = std::make_shared<std::atomic<int>>(0);
  worker->SetWakeup([wakeups] { wakeups->fetch_add(1); });
  int next = 0;
  // Stores one job at a time into an empty type until the worker hears of one.
  auto worker_hears_ingest = [&](milliseconds bound) {
    return WaitUntil(
        [&] {
          Drain(*worker, "t");
          const int before = wakeups->load();
          if (!Accepted(EnqueueSync(*ingest, MakeJob(JobId(next++))))) return false;
          return WaitUntil([&] { return wakeups->load() > before; }, milliseconds(300));
        },
        bound);
  };
  // The subscription starts asynchronously, hence the retries even here.
  EXPECT_TRUE(worker_hears_ingest(kFailFast))
      << "no wakeup in the worker for a job the ingest object stored";

  server.Kill9();
  ASSERT_TRUE(server.Start()) << server.Log();
  const auto restarted = Steady::now();
  bool woke = worker_hears_ingest(kRecovery);
  EXPECT_TRUE(woke) << "the worker's wakeup subscription did not come back within "
                    << kRecovery.count() << " ms of Redis restarting; PUBSUB NUMSUB fb:wake: "
                    << server.Cli({"PUBSUB", "NUMSUB", "fb:wake"});
  if (woke) {
    std::cout << "[ report   ] cross-object wakeups again " << Since(restarted).count()
              << " ms after Redis was back\n";
  }
}

// queue.durability maps onto Redis persistence; settings that cannot give the configured
// guarantee are reported (still opening: the operator decides).
TEST_F(RedisQueueTest, DurabilityShortfallFollowsRedisPersistence) {
  struct Case {
    std::string appendfsync;
    Durability durability;
    bool shortfall;
  };
  const std::vector<Case> cases = {
      {"always", Durability::kFsync, false},  {"always", Durability::kProcess, false},
      {"everysec", Durability::kFsync, true}, {"everysec", Durability::kProcess, false},
      {"no", Durability::kProcess, true},     {"no", Durability::kFsync, true},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE("appendfsync " + c.appendfsync + ", durability " +
                 (c.durability == Durability::kFsync ? "fsync" : "process"));
    testing::RedisServerOptions options;
    options.appendfsync = c.appendfsync;
    testing::RedisServer server(options);
    ASSERT_TRUE(server.Start()) << server.Log();
    auto queue = OpenOk(RedisConfig(server.Url(), c.durability), clock_);
    ASSERT_NE(queue, nullptr);
    std::string shortfall = queue->DurabilityShortfall();
    EXPECT_EQ(!shortfall.empty(), c.shortfall) << "shortfall: \"" << shortfall << "\"";
  }
}

// Throughput counts live in one hash per minute that expires 2 hours after its first
// write, so a Redis shared by many processes does not grow with them.
TEST_F(RedisQueueTest, ThroughputBucketsExpire) {
  testing::RedisServer server;
  ASSERT_TRUE(server.Start()) << server.Log();
  auto queue = OpenOk(RedisConfig(server.Url()), clock_);
  ASSERT_NE(queue, nullptr);
  ASSERT_TRUE(Accepted(EnqueueSync(*queue, MakeJob(JobId(1), "t"))));
  ASSERT_TRUE(Accepted(EnqueueSync(*queue, MakeJob(JobId(2), "t:with:colons"))));
  const std::string key = "fb:tput:" + std::to_string(clock_.NowMs() / 60'000);
  EXPECT_EQ(server.Cli({"HGET", key, "a:t"}), "1\n");
  EXPECT_EQ(server.Cli({"HGET", key, "a:t:with:colons"}), "1\n");
  int64_t ttl = std::stoll(server.Cli({"PTTL", key}));
  EXPECT_GT(ttl, 2 * 60 * 60'000 - 60'000);
  EXPECT_LE(ttl, 2 * 60 * 60'000);
  Result<std::vector<TypeThroughput>> counts = queue->Throughput(60'000);
  ASSERT_TRUE(counts.ok()) << counts.status().ToString();
  ASSERT_EQ(counts->size(), 2u);
  EXPECT_EQ((*counts)[0].type, "t");
  EXPECT_EQ((*counts)[1].type, "t:with:colons");
  EXPECT_EQ((*counts)[1].arrived, 1);
}

// A success's follow-up jobs (actions) keep their dedupe keys for dedupe_ttl, like an
// enqueue's: the finish script's other numbers (the attempt's handler time) must not
// take that place.
TEST_F(RedisQueueTest, FollowUpDedupeKeysLiveForTheDedupeTtl) {
  testing::RedisServer server;
  ASSERT_TRUE(server.Start()) << server.Log();
  auto queue = OpenOk(RedisConfig(server.Url()), clock_);
  ASSERT_NE(queue, nullptr);
  ASSERT_TRUE(Accepted(EnqueueSync(*queue, MakeJob(JobId(1), "t", {"k1"}))));
  Result<std::vector<Job>> claimed = ClaimSync(*queue, {{"t", 1, 30'000}});
  ASSERT_TRUE(claimed.ok()) << claimed.status().ToString();
  ASSERT_EQ(claimed->size(), 1u);
  JobFinish done;
  done.job_id = (*claimed)[0].id;
  done.attempt = (*claimed)[0].attempt;
  done.disposition = Disposition::kSucceeded;
  done.record.duration_ms = 5;
  done.follow_ups.push_back(MakeJob(JobId(2), "action:api", {"action:api:1:0"}));
  std::optional<Status> finished =
      Await<Status>([&](StatusCallback cb) { queue->Finish(done, std::move(cb)); });
  ASSERT_TRUE(finished.has_value());
  ASSERT_TRUE(finished->ok()) << finished->ToString();
  for (const std::string key : {"fb:dedupe:k1", "fb:dedupe:action:api:1:0"}) {
    int64_t ttl = std::stoll(server.Cli({"PTTL", key}));
    EXPECT_GT(ttl, 50'000) << key;
    EXPECT_LE(ttl, 60'000) << key;
  }
}

// Everything firebreak stores is under "fb:", so a shared Redis can hold other data.
TEST_F(RedisQueueTest, KeysStayUnderThePrefix) {
  testing::RedisServer server;
  ASSERT_TRUE(server.Start()) << server.Log();
  ASSERT_TRUE(server.Cli({"SET", "other:app", "1"}).rfind("OK", 0) == 0);
  auto queue = OpenOk(RedisConfig(server.Url()), clock_);
  ASSERT_NE(queue, nullptr);
  NewJob ordered = MakeJob(JobId(1), "t", {"dedupe-1"});
  ordered.ordering_key = "C1";
  ASSERT_TRUE(Accepted(EnqueueSync(*queue, ordered)));
  NewJob delayed = MakeJob(JobId(2), "t");
  delayed.run_at_ms = clock_.NowMs() + 60'000;
  ASSERT_TRUE(Accepted(EnqueueSync(*queue, delayed)));
  ASSERT_TRUE(Accepted(EnqueueSync(*queue, MakeJob(JobId(3), "u"))));
  Result<std::vector<Job>> claimed = ClaimSync(*queue, {{"t", 1, 1000}, {"u", 1, 1000}});
  ASSERT_TRUE(claimed.ok()) << claimed.status().ToString();
  ASSERT_EQ(claimed->size(), 2u);
  JobFinish dead;
  dead.job_id = (*claimed)[1].id;
  dead.attempt = (*claimed)[1].attempt;
  dead.disposition = Disposition::kDead;
  dead.record.outcome = "rejected";
  std::optional<Status> finished =
      Await<Status>([&](StatusCallback done) { queue->Finish(dead, std::move(done)); });
  ASSERT_TRUE(finished.has_value());
  ASSERT_TRUE(finished->ok()) << finished->ToString();

  std::istringstream keys(server.Cli({"--scan"}));
  int ours = 0;
  for (std::string key; std::getline(keys, key);) {
    if (key.empty() || key == "other:app") continue;
    EXPECT_EQ(key.rfind("fb:", 0), 0u) << "key outside the prefix: " << key;
    ++ours;
  }
  EXPECT_GT(ours, 0);
  EXPECT_EQ(server.Cli({"GET", "other:app"}), "1\n");  // other data untouched
}

}  // namespace
}  // namespace firebreak
