// The Queue contract (queue.h, DESIGN §4), one test body per behaviour, run against every
// backend: each TEST_P runs as .../sqlite and .../redis. Queues are opened only through
// OpenQueue, so nothing here may depend on one backend's internals.
//
// Time: a FakeClock drives both backends (the redis backend hands the queue clock's now to
// its scripts). Both sweep expired leases in the background every 250 ms of real time, so
// after moving the clock past a lease, run_at or retry time a test polls (bounded) for
// the effect instead of sleeping a fixed time or assuming the next call sees it.
#include <gtest/gtest.h>
#include <signal.h>
#include <sqlite3.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "queue_test_util.h"
#include "admin/bulk_operations.h"
#include "admin/job_view.h"
#include "common/clock.h"
#include "common/status.h"
#include "config/config.h"
#include "queue/queue.h"
#include "support/fault_vfs.h"
#include "support/redis_server.h"

namespace firebreak {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

// Longest a test waits for one callback; a lost callback fails the test instead of hanging it.
constexpr milliseconds kCallbackBound{10'000};
// Longest a test waits for a background sweep (every 250 ms) to act on a clock change.
constexpr milliseconds kSweepBound{3'000};

using queue_test::JobId;
using queue_test::kBurstTimeout;
using queue_test::MakeJob;
using queue_test::TempDir;

// Starts an asynchronous queue call and waits (bounded) for its callback. The promise is
// shared with the callback so a late callback after a timeout stays harmless.
template <typename T, typename Start>
std::optional<T> Await(Start start) {
  auto done = std::make_shared<std::promise<T>>();
  std::future<T> future = done->get_future();
  start([done](T value) { done->set_value(std::move(value)); });
  if (future.wait_for(kCallbackBound) != std::future_status::ready) return std::nullopt;
  return future.get();
}

Status CallbackLost(const char* call) {
  ADD_FAILURE() << call << " callback did not run within " << kCallbackBound.count() << " ms";
  return Status(StatusCode::kDeadlineExceeded, std::string(call) + " callback lost");
}

EnqueueResult EnqueueSync(Queue& queue, NewJob job) {
  std::optional<EnqueueResult> result = Await<EnqueueResult>(
      [&](EnqueueCallback done) { queue.Enqueue(std::move(job), std::move(done)); });
  if (result) return *result;
  EnqueueResult lost;
  lost.status = CallbackLost("Enqueue");
  return lost;
}

Result<std::vector<Job>> ClaimSync(Queue& queue, std::vector<ClaimSlots> slots) {
  std::optional<Result<std::vector<Job>>> result = Await<Result<std::vector<Job>>>(
      [&](ClaimCallback done) { queue.Claim(std::move(slots), std::move(done)); });
  if (result) return *result;
  return CallbackLost("Claim");
}

std::vector<Job> ClaimOk(Queue& queue, const std::string& type, int limit,
                         int64_t lease_ms = 30'000) {
  Result<std::vector<Job>> jobs = ClaimSync(queue, {{type, limit, lease_ms}});
  EXPECT_TRUE(jobs.ok()) << jobs.status().ToString();
  return jobs.ok() ? *jobs : std::vector<Job>{};
}

Status FinishSync(Queue& queue, JobFinish finish) {
  std::optional<Status> result =
      Await<Status>([&](StatusCallback done) { queue.Finish(std::move(finish), std::move(done)); });
  if (result) return *result;
  return CallbackLost("Finish");
}

JobFinish Finished(const Job& job, Disposition disposition, int64_t run_at_ms = 0,
                   const std::string& error = "") {
  JobFinish finish;
  finish.job_id = job.id;
  finish.attempt = job.attempt;
  finish.disposition = disposition;
  finish.run_at_ms = run_at_ms;
  finish.record.started_at_ms = 1000 + job.attempt;
  finish.record.duration_ms = 7;
  finish.record.outcome = "failed";
  finish.record.error = error;
  return finish;
}

// A job of type "t" whose key is `key`, with at most `key_limit` of that key at once.
NewJob KeyedJob(int n, const std::string& key, int key_limit = 1) {
  NewJob job = MakeJob(JobId(n), "t");
  job.ordering_key = key;
  job.key_limit = key_limit;
  return job;
}

TypeDepth DepthOf(Queue& queue, const std::string& type) {
  Result<std::vector<TypeDepth>> stats = queue.Stats();
  EXPECT_TRUE(stats.ok()) << stats.status().ToString();
  if (stats.ok()) {
    for (const TypeDepth& depth : *stats) {
      if (depth.type == type) return depth;
    }
  }
  TypeDepth none;
  none.type = type;
  return none;
}

// Throughput of one type over `window_ms` (zeros when the type has no counts).
TypeThroughput ThroughputOf(Queue& queue, const std::string& type, int64_t window_ms = 5 * 60'000) {
  Result<std::vector<TypeThroughput>> all = queue.Throughput(window_ms);
  EXPECT_TRUE(all.ok()) << all.status().ToString();
  TypeThroughput none;
  none.type = type;
  if (!all.ok()) return none;
  for (const TypeThroughput& t : *all) {
    if (t.type == type) return t;
  }
  return none;
}

// Polls `condition` every 10 ms until it holds or `timeout` (real time) has passed.
bool WaitUntil(const std::function<bool()>& condition, milliseconds timeout = kSweepBound) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (condition()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(milliseconds(10));
  }
}

// Claims until something comes back or the sweep bound passes: for jobs that became
// runnable because the clock moved (a backend may notice that in its background sweep).
std::vector<Job> ClaimWithinSweep(Queue& queue, const std::string& type, int limit,
                                  int64_t lease_ms = 30'000) {
  std::vector<Job> claimed;
  WaitUntil([&] {
    claimed = ClaimOk(queue, type, limit, lease_ms);
    return !claimed.empty();
  });
  return claimed;
}

// Counts Enqueue callbacks. Shared with the callbacks, so one that runs after a failed
// test has given up waiting still writes to live memory.
struct EnqueueTally : std::enable_shared_from_this<EnqueueTally> {
  std::atomic<int> accepted{0};
  std::atomic<int> answered{0};

  EnqueueCallback Callback() {
    return [self = shared_from_this()](EnqueueResult r) {
      if (r.status.ok() && r.outcome == EnqueueOutcome::kAccepted) self->accepted.fetch_add(1);
      self->answered.fetch_add(1);
    };
  }
  bool WaitAnswered(int n) {
    return WaitUntil([&] { return answered.load() == n; }, kCallbackBound);
  }
};

JobFilter ByKey(const std::string& key) {
  JobFilter filter;
  filter.key = key;
  return filter;
}

std::vector<std::string> Ids(const std::vector<Job>& jobs) {
  std::vector<std::string> out;
  for (const Job& job : jobs) out.push_back(job.id);
  return out;
}

class QueueContractTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    config_.backend = GetParam();
    config_.path = dir_.path() + "/queue.db";
    config_.durability = Durability::kProcess;
    config_.dedupe_ttl = milliseconds(60'000);
    config_.max_depth = 100'000;
    if (GetParam() == "redis") {
      // A fresh server per test: no state leaks between tests.
      ASSERT_TRUE(testing::RedisServerAvailable()) << "redis-server is not on PATH";
      redis_ = std::make_unique<testing::RedisServer>();
      ASSERT_TRUE(redis_->Start()) << redis_->Log();
      config_.url = redis_->Url();
    } else {
      // Every connection of this test's files goes through the fault-injecting VFS.
      testing::FaultVfs::Install().SetFilter(dir_.path());
    }
  }

  // The ways a store fails, made for real where a test can (Redis' own maxmemory, and
  // SIGSTOP) and injected where it cannot (SQLite: a full or a hung disk).
  void RefuseWrites() {
    if (GetParam() == "redis") {
      redis_->Cli({"CONFIG", "SET", "maxmemory", "1"});
    } else {
      testing::FaultVfs::Install().FailWrites(SQLITE_FULL);
    }
  }
  void AcceptWrites() {
    if (GetParam() == "redis") {
      redis_->Cli({"CONFIG", "SET", "maxmemory", "0"});
    } else {
      testing::FaultVfs::Install().FailWrites(SQLITE_OK);
    }
  }
  void Hang() {
    if (GetParam() == "redis") {
      kill(redis_->pid(), SIGSTOP);
    } else {
      testing::FaultVfs::Install().Hang(true);
    }
  }
  void Resume() {
    if (GetParam() == "redis") {
      kill(redis_->pid(), SIGCONT);
    } else {
      testing::FaultVfs::Install().Hang(false);
    }
  }

  std::unique_ptr<Queue> Open() {
    Result<std::unique_ptr<Queue>> queue = OpenQueue(config_, clock_);
    EXPECT_TRUE(queue.ok()) << queue.status().ToString();
    return queue.ok() ? std::move(*queue) : nullptr;
  }

  // Enqueues `count` jobs of `type` with max_attempts = 1, claims them and lets their
  // leases expire, so the sweep moves them to the dead-letter queue.
  void MakeDeadJobs(Queue& queue, const std::string& type, int first, int count) {
    const int64_t dead_before = DepthOf(queue, type).dead;
    auto tally = std::make_shared<EnqueueTally>();
    for (int i = 0; i < count; ++i) {
      NewJob job = MakeJob(JobId(first + i), type);
      job.max_attempts = 1;
      queue.Enqueue(std::move(job), tally->Callback());
    }
    // Separate calls are not ordered with each other: every enqueue must be committed
    // before the claim.
    ASSERT_TRUE(tally->WaitAnswered(count));
    ASSERT_EQ(tally->accepted.load(), count);
    size_t claimed = 0;
    for (int tries = 0; tries < 20 && claimed < static_cast<size_t>(count); ++tries) {
      claimed += ClaimOk(queue, type, count, 1000).size();
    }
    ASSERT_EQ(claimed, static_cast<size_t>(count));
    clock_.Advance(milliseconds(1001));
    EXPECT_TRUE(WaitUntil([&] { return DepthOf(queue, type).dead == dead_before + count; }))
        << "dead " << DepthOf(queue, type).dead << ", want " << dead_before + count;
  }

  TempDir dir_;
  QueueConfig config_;
  FakeClock clock_;
  std::unique_ptr<testing::RedisServer> redis_;
};

TEST_P(QueueContractTest, EnqueueClaimSucceed) {
  auto queue = Open();
  ASSERT_NE(queue, nullptr);
  EXPECT_TRUE(queue->Health().ready) << queue->Health().reason;

  NewJob job = MakeJob(JobId(1), "slack.event", {"slack:Ev1"});
  job.ordering_key = "C1";
  EnqueueResult result = EnqueueSync(*queue, job);
  ASSERT_TRUE(result.status.ok()) << result.status.ToString();
  EXPECT_EQ(result.outcome, EnqueueOutcome::kAccepted);
  EXPECT_EQ(result.job_id, job.id);
  EXPECT_EQ(DepthOf(*queue, "slack.event").ready, 1);

  const int64_t now = clock_.NowMs();
  std::vector<Job> claimed = ClaimOk(*queue, "slack.event", 10, 5000);
  ASSERT_EQ(claimed.size(), 1u);
  const Job& got = claimed[0];
  EXPECT_EQ(got.id, job.id);
  EXPECT_EQ(got.type, "slack.event");
  EXPECT_EQ(got.source, "hmac");
  EXPECT_EQ(got.dedupe_key, "slack:Ev1");
  EXPECT_EQ(got.payload_json, job.payload_json);
  EXPECT_EQ(got.headers_json, job.headers_json);
  EXPECT_EQ(got.traceparent, job.traceparent);
  EXPECT_EQ(got.ordering_key, "C1");
  EXPECT_EQ(got.state, JobState::kInFlight);
  EXPECT_EQ(got.attempt, 1);
  EXPECT_EQ(got.max_attempts, 3);
  EXPECT_EQ(got.enqueued_at_ms, now);
  EXPECT_EQ(got.run_at_ms, now);
  EXPECT_EQ(got.lease_until_ms, now + 5000);
  EXPECT_TRUE(got.attempts.empty());

  TypeDepth depth = DepthOf(*queue, "slack.event");
  EXPECT_EQ(depth.ready, 0);
  EXPECT_EQ(depth.in_flight, 1);
  EXPECT_TRUE(ClaimOk(*queue, "slack.event", 10).empty());

  EXPECT_TRUE(FinishSync(*queue, Finished(got, Disposition::kSucceeded)).ok());
  // Kept as history (queue.retention, 24 h by default) with its successful attempt.
  Result<Job> done = queue->GetJob(job.id);
  ASSERT_TRUE(done.ok()) << done.status().ToString();
  EXPECT_EQ(done->state, JobState::kSucceeded);
  EXPECT_EQ(done->finished_at_ms, now);
  ASSERT_EQ(done->attempts.size(), 1u);
  EXPECT_EQ(done->attempts[0].attempt, 1);
  EXPECT_EQ(done->attempts[0].duration_ms, 7);
  depth = DepthOf(*queue, "slack.event");
  EXPECT_EQ(depth.ready + depth.delayed + depth.in_flight + depth.dead, 0);
  EXPECT_EQ(depth.succeeded, 1);
  // A second finish of the same attempt is stale.
  EXPECT_EQ(FinishSync(*queue, Finished(got, Disposition::kSucceeded)).code(),
            StatusCode::kFailedPrecondition);
}

TEST_P(QueueContractTest, RejectsJobWithoutIdOrType) {
  auto queue = Open();
  ASSERT_NE(queue, nullptr);
  EXPECT_EQ(EnqueueSync(*queue, MakeJob("", "t")).status.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(EnqueueSync(*queue, MakeJob("x", "")).status.code(), StatusCode::kInvalidArgument);
  ASSERT_TRUE(EnqueueSync(*queue, MakeJob("same-id")).status.ok());
  EXPECT_EQ(EnqueueSync(*queue, MakeJob("same-id")).status.code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(DepthOf(*queue, "test.event").ready, 1);
  Result<std::vector<TypeDepth>> stats = queue->Stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->size(), 1u);  // the rejected jobs left no trace of their types
}

TEST_P(QueueContractTest, DedupeWithinTtl) {
  auto queue = Open();
  ASSERT_NE(queue, nullptr);
  EnqueueResult first = EnqueueSync(*queue, MakeJob(JobId(1), "t", {"k"}));
  ASSERT_TRUE(first.status.ok());
  EXPECT_EQ(first.outcome, EnqueueOutcome::kAccepted);

  EnqueueResult second = EnqueueSync(*queue, MakeJob(JobId(2), "t", {"k"}));
  ASSERT_TRUE(second.status.ok());
  EXPECT_EQ(second.outcome, EnqueueOutcome::kDuplicate);
  EXPECT_EQ(second.job_id, JobId(1));
  EXPECT_EQ(queue->GetJob(JobId(2)).status().code(), StatusCode::kNotFound);

  // Still a duplicate after the first job succeeded: the key outlives the job.
  std::vector<Job> claimed = ClaimOk(*queue, "t", 1);
  ASSERT_EQ(claimed.size(), 1u);
  ASSERT_TRUE(FinishSync(*queue, Finished(claimed[0], Disposition::kSucceeded)).ok());
  clock_.Advance(milliseconds(59'999));
  EnqueueResult late = EnqueueSync(*queue, MakeJob(JobId(3), "t", {"k"}));
  EXPECT_EQ(late.outcome, EnqueueOutcome::kDuplicate);
  EXPECT_EQ(late.job_id, JobId(1));

  // Two keys: a duplicate if either is live; otherwise both are stored.
  EnqueueResult either = EnqueueSync(*queue, MakeJob(JobId(4), "t", {"fresh", "k"}));
  EXPECT_EQ(either.outcome, EnqueueOutcome::kDuplicate);
  EXPECT_EQ(either.job_id, JobId(1));
  EXPECT_EQ(EnqueueSync(*queue, MakeJob(JobId(5), "t", {"fresh"})).outcome,
            EnqueueOutcome::kAccepted);  // JobId(4) stored none of its keys
  EXPECT_EQ(EnqueueSync(*queue, MakeJob(JobId(6), "t", {"a", "b"})).outcome,
            EnqueueOutcome::kAccepted);
  EnqueueResult by_second_key = EnqueueSync(*queue, MakeJob(JobId(7), "t", {"b"}));
  EXPECT_EQ(by_second_key.outcome, EnqueueOutcome::kDuplicate);
  EXPECT_EQ(by_second_key.job_id, JobId(6));
  // No keys: never a duplicate.
  EXPECT_EQ(EnqueueSync(*queue, MakeJob(JobId(8), "t")).outcome, EnqueueOutcome::kAccepted);
  EXPECT_EQ(EnqueueSync(*queue, MakeJob(JobId(9), "t")).outcome, EnqueueOutcome::kAccepted);
}

// sqlite expires a dedupe key by the queue clock (the FakeClock here); redis stores it
// with a PX TTL that Redis itself counts down in real time from the enqueue, which no fake
// clock can move. So the TTL is short and the test both moves the fake clock and waits
// out the TTL for real: the key must expire in either backend, and the "within" checks
// run milliseconds after the enqueue, well inside the real TTL.
TEST_P(QueueContractTest, DedupeKeyExpiresAfterTtl) {
  constexpr milliseconds kTtl{1000};
  config_.dedupe_ttl = kTtl;
  auto queue = Open();
  ASSERT_NE(queue, nullptr);
  ASSERT_EQ(EnqueueSync(*queue, MakeJob(JobId(1), "t", {"k"})).outcome, EnqueueOutcome::kAccepted);
  const auto stored_by = std::chrono::steady_clock::now();  // the key's TTL started before this

  clock_.Advance(kTtl - milliseconds(1));
  EnqueueResult within = EnqueueSync(*queue, MakeJob(JobId(2), "t", {"k"}));
  ASSERT_LT(std::chrono::steady_clock::now() - stored_by, kTtl)
      << "the machine was too slow to check inside the real TTL";
  EXPECT_EQ(within.outcome, EnqueueOutcome::kDuplicate);
  EXPECT_EQ(within.job_id, JobId(1));

  clock_.Advance(milliseconds(1));
  std::this_thread::sleep_until(stored_by + kTtl + milliseconds(100));
  EnqueueResult after = EnqueueSync(*queue, MakeJob(JobId(3), "t", {"k"}));
  ASSERT_TRUE(after.status.ok()) << after.status.ToString();
  EXPECT_EQ(after.outcome, EnqueueOutcome::kAccepted);
  EXPECT_EQ(after.job_id, JobId(3));
  // The key is live again, now held by the new job.
  EnqueueResult again = EnqueueSync(*queue, MakeJob(JobId(4), "t", {"k"}));
  EXPECT_EQ(again.outcome, EnqueueOutcome::kDuplicate);
  EXPECT_EQ(again.job_id, JobId(3));
}

// Many concurrent enqueues with one key (likely landing in one batch or racing between
// connections): exactly one is stored, every other one names it as the duplicate's holder.
TEST_P(QueueContractTest, ConcurrentEnqueuesOfOneKeyAcceptExactlyOne) {
  auto queue = Open();
  ASSERT_NE(queue, nullptr);
  constexpr int kThreads = 4;
  constexpr int kPerThread = 25;
  struct Collected {
    std::mutex mu;
    std::vector<EnqueueResult> results;  // guarded by mu
  };
  auto collected = std::make_shared<Collected>();  // outlives a late callback
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&queue, collected, t] {
      for (int i = 0; i < kPerThread; ++i) {
        queue->Enqueue(MakeJob(JobId(t * kPerThread + i), "t", {"same"}),
                       [collected](EnqueueResult r) {
                         std::lock_guard lock(collected->mu);
                         collected->results.push_back(std::move(r));
                       });
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  ASSERT_TRUE(WaitUntil(
      [&] {
        std::lock_guard lock(collected->mu);
        return collected->results.size() == kThreads * kPerThread;
      },
      kCallbackBound));

  std::vector<EnqueueResult> results;
  {
    std::lock_guard lock(collected->mu);
    results = collected->results;
  }
  std::vector<std::string> accepted;
  for (const EnqueueResult& r : results) {
    ASSERT_TRUE(r.status.ok()) << r.status.ToString();
    if (r.outcome == EnqueueOutcome::kAccepted) accepted.push_back(r.job_id);
  }
  ASSERT_EQ(accepted.size(), 1u);
  for (const EnqueueResult& r : results) {
    if (r.outcome == EnqueueOutcome::kAccepted) continue;
    EXPECT_EQ(r.outcome, EnqueueOutcome::kDuplicate);
    EXPECT_EQ(r.job_id, accepted[0]);
  }
  EXPECT_EQ(DepthOf(*queue, "t").ready, 1);
  EXPECT_TRUE(queue->GetJob(accepted[0]).ok());
}

TEST_P(QueueContractTest, MaxDepthOverloads) {
  config_.max_depth = 3;
  auto queue = Open();
  ASSERT_NE(queue, nullptr);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(EnqueueSync(*queue, MakeJob(JobId(i), "t", {"k" + std::to_string(i)})).outcome,
              EnqueueOutcome::kAccepted);
  }
  EnqueueResult over = EnqueueSync(*queue, MakeJob(JobId(3), "t", {"k3"}));
  ASSERT_TRUE(over.status.ok());
  EXPECT_EQ(over.outcome, EnqueueOutcome::kOverloaded);
  EXPECT_EQ(queue->GetJob(JobId(3)).status().code(), StatusCode::kNotFound);
  // Its key was not stored either.
  ASSERT_EQ(ClaimOk(*queue, "t", 1).size(), 1u);  // in flight does not count toward depth
  EXPECT_EQ(EnqueueSync(*queue, MakeJob(JobId(4), "t", {"k3"})).outcome, EnqueueOutcome::kAccepted);
  EXPECT_EQ(EnqueueSync(*queue, MakeJob(JobId(5), "t")).outcome, EnqueueOutcome::kOverloaded);

  // Another type counts toward the same limit, and a reopened queue counts what is stored.
  queue->Close();
  queue.reset();
  queue = Open();
  ASSERT_NE(queue, nullptr);
  EXPECT_EQ(EnqueueSync(*queue, MakeJob(JobId(6), "other")).outcome, EnqueueOutcome::kOverloaded);
  // Delayed jobs count too: one leaves ready (succeeds), a delayed one takes its place.
  std::vector<Job> claimed = ClaimOk(*queue, "t", 1);
  ASSERT_EQ(claimed.size(), 1u);
  ASSERT_TRUE(FinishSync(*queue, Finished(claimed[0], Disposition::kSucceeded)).ok());
  NewJob delayed = MakeJob(JobId(7), "t");
  delayed.run_at_ms = clock_.NowMs() + 60'000;
  EXPECT_EQ(EnqueueSync(*queue, delayed).outcome, EnqueueOutcome::kAccepted);
  EXPECT_EQ(EnqueueSync(*queue, MakeJob(JobId(8), "t")).outcome, EnqueueOutcome::kOverloaded);
}

TEST_P(QueueContractTest, OrderingKeyRunsFifoOneInFlightPerKey) {
  auto queue = Open();
  ASSERT_NE(queue, nullptr);
  // Key A gets jobs 3, 2, 1 in that order (ids sort the other way round, so order by id
  // would be caught), key B gets 4, and 5 and 6 have none; all runnable at the same time.
  auto enqueue = [&](int n, const std::string& key) {
    ASSERT_EQ(EnqueueSync(*queue, KeyedJob(n, key)).outcome, EnqueueOutcome::kAccepted);
  };
  enqueue(3, "A");
  enqueue(2, "A");
  enqueue(1, "A");
  enqueue(4, "B");
  enqueue(5, "");
  enqueue(6, "");
  std::vector<Job> first = ClaimOk(*queue, "t", 10);
  EXPECT_EQ(Ids(first), (std::vector<std::string>{JobId(3), JobId(4), JobId(5), JobId(6)}));
  ASSERT_FALSE(first.empty());
  ASSERT_EQ(first[0].id, JobId(3));
  // While the head of A is in flight nothing else of A runs.
  EXPECT_TRUE(ClaimOk(*queue, "t", 10).empty());
  // The head fails and is retried later: the rest of A still waits behind it (FIFO, not
  // just one in flight).
  ASSERT_TRUE(
      FinishSync(*queue, Finished(first[0], Disposition::kRetry, clock_.NowMs() + 1000, "busy"))
          .ok());
  EXPECT_TRUE(ClaimOk(*queue, "t", 10).empty());
  clock_.Advance(milliseconds(1000));
  std::vector<Job> again = ClaimWithinSweep(*queue, "t", 10);
  EXPECT_EQ(Ids(again), (std::vector<std::string>{JobId(3)}));
  ASSERT_EQ(again.size(), 1u);
  ASSERT_TRUE(FinishSync(*queue, Finished(again[0], Disposition::kSucceeded)).ok());
  std::vector<Job> second = ClaimOk(*queue, "t", 10);
  EXPECT_EQ(Ids(second), (std::vector<std::string>{JobId(2)}));
  ASSERT_EQ(second.size(), 1u);
  // A dead job does not block its key.
  ASSERT_TRUE(FinishSync(*queue, Finished(second[0], Disposition::kDead, 0, "bad")).ok());
  EXPECT_EQ(Ids(ClaimOk(*queue, "t", 10)), (std::vector<std::string>{JobId(1)}));
}

// A key's head whose worker died (lease expired) is still the head: it runs again before
// the rest of its key. Keys are per type: the same key in another type does not wait.
TEST_P(QueueContractTest, OrderingKeyHeadWithExpiredLeaseRunsFirst) {
  auto queue = Open();
  ASSERT_NE(queue, nullptr);
  for (int n : {1, 2}) {
    ASSERT_EQ(EnqueueSync(*queue, KeyedJob(n, "K")).outcome, EnqueueOutcome::kAccepted);
  }
  NewJob other_type = MakeJob(JobId(3), "u");
  other_type.ordering_key = "K";
  ASSERT_EQ(EnqueueSync(*queue, other_type).outcome, EnqueueOutcome::kAccepted);

  Result<std::vector<Job>> first = ClaimSync(*queue, {{"t", 10, 1000}, {"u", 10, 1000}});
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_EQ(Ids(*first), (std::vector<std::string>{JobId(1), JobId(3)}));
  clock_.Advance(milliseconds(1000));
  std::vector<Job> again = ClaimWithinSweep(*queue, "t", 10, 1000);
  EXPECT_EQ(Ids(again), (std::vector<std::string>{JobId(1)}));
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].attempt, 2);
  ASSERT_TRUE(FinishSync(*queue, Finished(again[0], Disposition::kSucceeded)).ok());
  EXPECT_EQ(Ids(ClaimOk(*queue, "t", 10)), (std::vector<std::string>{JobId(2)}));
}

// concurrency_per_key = N: at most N jobs of a key runnable or in flight, oldest first; a
// job leaving (success, death, cancel) lets the next one in, a retry keeps its place.
TEST_P(QueueContractTest, KeyLimitRunsAtMostNOfAKeyAtOnce) {
  auto queue = Open();
  ASSERT_NE(queue, nullptr);
  auto enqueue = [&](int n, const std::string& key) {
    ASSERT_EQ(EnqueueSync(*queue, KeyedJob(n, key, 2)).outcome, EnqueueOutcome::kAccepted);
  };
  for (int n = 1; n <= 6; ++n) enqueue(n, "A");
  enqueue(7, "B");
  EXPECT_EQ(DepthOf(*queue, "t").ready, 7);  // parked jobs are waiting, like any other
  std::vector<Job> first = ClaimOk(*queue, "t", 10);
  EXPECT_EQ(Ids(first), (std::vector<std::string>{JobId(1), JobId(2), JobId(7)}));
  ASSERT_EQ(first.size(), 3u);
  EXPECT_TRUE(ClaimOk(*queue, "t", 10).empty());
  // A success lets the next one in.
  ASSERT_TRUE(FinishSync(*queue, Finished(first[0], Disposition::kSucceeded)).ok());
  std::vector<Job> second = ClaimOk(*queue, "t", 10);
  EXPECT_EQ(Ids(second), (std::vector<std::string>{JobId(3)}));
  // A retry waiting out its backoff keeps its place: nothing else of A runs meanwhile.
  ASSERT_TRUE(
      FinishSync(*queue, Finished(first[1], Disposition::kRetry, clock_.NowMs() + 1000, "busy"))
          .ok());
  EXPECT_TRUE(ClaimOk(*queue, "t", 10).empty());
  // A death and a cancel each let one more in.
  ASSERT_EQ(second.size(), 1u);
  ASSERT_TRUE(FinishSync(*queue, Finished(second[0], Disposition::kDead, 0, "bad")).ok());
  EXPECT_EQ(Ids(ClaimOk(*queue, "t", 10)), (std::vector<std::string>{JobId(4)}));
  ASSERT_TRUE(queue->Cancel(JobId(6)).ok());  // parked: nothing moves up for it
  EXPECT_TRUE(ClaimOk(*queue, "t", 10).empty());
  clock_.Advance(milliseconds(1000));
  std::vector<Job> retried = ClaimWithinSweep(*queue, "t", 10);
  EXPECT_EQ(Ids(retried), (std::vector<std::string>{JobId(2)}));
  ASSERT_EQ(retried.size(), 1u);
  ASSERT_TRUE(queue->Cancel(JobId(5)).ok());
  ASSERT_TRUE(FinishSync(*queue, Finished(retried[0], Disposition::kSucceeded)).ok());
  EXPECT_TRUE(ClaimOk(*queue, "t", 10).empty());
  Result<Job> stored = queue->GetJob(JobId(5));
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ(stored->key_limit, 2);
}

// Fairness: a job that moves up in its key's line queues behind every job that was
// runnable before it, so a key with a backlog does not hold back a key with one job.
TEST_P(QueueContractTest, KeysWithABacklogTakeTurnsWithOtherKeys) {
  auto queue = Open();
  ASSERT_NE(queue, nullptr);
  auto enqueue = [&](int n, const std::string& key) {
    ASSERT_EQ(EnqueueSync(*queue, KeyedJob(n, key)).outcome, EnqueueOutcome::kAccepted);
    clock_.Advance(milliseconds(1));
  };
  for (int n = 1; n <= 4; ++n) enqueue(n, "busy");
  enqueue(5, "quiet");
  enqueue(6, "other");
  std::vector<std::string> order;
  for (int i = 0; i < 6; ++i) {
    std::vector<Job> one = ClaimOk(*queue, "t", 1);
    ASSERT_EQ(one.size(), 1u) << "claim " << i;
    order.push_back(one[0].id);
    clock_.Advance(milliseconds(1));
    ASSERT_TRUE(FinishSync(*queue, Finished(one[0], Disposition::kSucceeded)).ok());
  }
  // busy's second job became runnable only when its first finished: after quiet and
  // other, which were runnable already.
  EXPECT_EQ(order, (std::vector<std::string>{JobId(1), JobId(5), JobId(6), JobId(2), JobId(3),
                                             JobId(4)}));
}

// Throttle per key: at most 2 starts of a key in any 1 s. A job over it is not claimed
// and waits until the oldest of those starts leaves the window; other keys and unkeyed
// jobs are not held back, and every start counts (a retry too).
TEST_P(QueueContractTest, ThrottleStartsAtMostNOfAKeyPerPeriod) {
  auto queue = Open();
  ASSERT_NE(queue, nullptr);
  for (int n = 1; n <= 6; ++n) {
    ASSERT_EQ(EnqueueSync(*queue, KeyedJob(n, "A", 10)).outcome, EnqueueOutcome::kAccepted);
  }
  ASSERT_EQ(EnqueueSync(*queue, KeyedJob(7, "B", 10)).outcome, EnqueueOutcome::kAccepted);
  ASSERT_EQ(EnqueueSync(*queue, MakeJob(JobId(8), "t")).outcome, EnqueueOutcome::kAccepted);
  auto claim = [&](int limit) {
    ClaimSlots slot{"t", limit, 30'000};
    slot.throttle_limit = 2;
    slot.throttle_period_ms = 1000;
    Result<std::vector<Job>> jobs = ClaimSync(*queue, {slot});
    EXPECT_TRUE(jobs.ok()) << jobs.status().ToString();
    return jobs.ok() ? *jobs : std::vector<Job>{};
  };
  const int64_t t0 = clock_.NowMs();
  std::vector<Job> first = claim(10);
  EXPECT_EQ(Ids(first), (std::vector<std::string>{JobId(1), JobId(2), JobId(7), JobId(8)}));
  // The rest of A waits for room, not lost: delayed until t0 + 1 s.
  EXPECT_EQ(DepthOf(*queue, "t").delayed, 4);
  Result<Job> waiting = queue->GetJob(JobId(3));
  ASSERT_TRUE(waiting.ok());
  EXPECT_EQ(waiting->state, JobState::kReady);
  EXPECT_EQ(waiting->run_at_ms, t0 + 1000);
  EXPECT_TRUE(claim(10).empty());
  clock_.Advance(milliseconds(400));
  // A retry of A1 is a start too: it waits behind the window like the others.
  ASSERT_EQ(first.size(), 4u);
  ASSERT_TRUE(
      FinishSync(*queue, Finished(first[0], Disposition::kRetry, clock_.NowMs(), "busy")).ok());
  EXPECT_TRUE(claim(10).empty());
  clock_.Advance(milliseconds(599));
  EXPECT_TRUE(claim(10).empty());
  clock_.Advance(milliseconds(1));  // t0 + 1 s: both starts of t0 have left the window
  std::vector<Job> second = claim(10);
  EXPECT_EQ(second.size(), 2u);
  for (const Job& job : second) EXPECT_EQ(job.ordering_key, "A");
  EXPECT_TRUE(claim(10).empty());
  clock_.Advance(milliseconds(1000));
  EXPECT_EQ(claim(10).size(), 2u);
  clock_.Advance(milliseconds(1000));
  EXPECT_EQ(claim(10).size(), 1u);  // all six of A started, two per second at most
  EXPECT_EQ(DepthOf(*queue, "t").ready + DepthOf(*queue, "t").delayed, 0);
}

// global_concurrency: a claim takes at most the cap minus the type's jobs in flight in
// the store (whoever claimed them); other types are not counted; an expired lease counts
// until the sweep takes the job back.
TEST_P(QueueContractTest, GlobalLimitCapsJobsInFlightOverEveryClaimer) {
  auto queue = Open();
  ASSERT_NE(queue, nullptr);
  for (int n = 1; n <= 6; ++n) {
    ASSERT_EQ(EnqueueSync(*queue, MakeJob(JobId(n), "t")).outcome, EnqueueOutcome::kAccepted);
  }
  ASSERT_EQ(EnqueueSync(*queue, MakeJob(JobId(7), "other")).outcome, EnqueueOutcome::kAccepted);
  auto claim = [&](const std::string& type, int limit, int64_t lease_ms = 30'000) {
    ClaimSlots slot{type, limit, lease_ms};
    slot.global_limit = 3;
    Result<std::vector<Job>> jobs = ClaimSync(*queue, {slot});
    EXPECT_TRUE(jobs.ok()) << jobs.status().ToString();
    return jobs.ok() ? *jobs : std::vector<Job>{};
  };
  std::vector<Job> first = claim("t", 2, 1000);  // a worker with 2 free slots
  EXPECT_EQ(first.size(), 2u);
  EXPECT_EQ(claim("t", 10).size(), 1u);  // another with 10: room for one more
  EXPECT_TRUE(claim("t", 10).empty());
  EXPECT_EQ(claim("other", 10).size(), 1u);  // its own cap
  ASSERT_EQ(first.size(), 2u);
  ASSERT_TRUE(FinishSync(*queue, Finished(first[0], Disposition::kSucceeded)).ok());
  EXPECT_EQ(claim("t", 10).size(), 1u);
  EXPECT_TRUE(claim("t", 10).empty());
  // first[1]'s claimer died: its lease runs out and the sweep puts it back, which frees
  // room for exactly one.
  clock_.Advance(milliseconds(1001));
  std::vector<Job> after;
  WaitUntil([&] {
    after = claim("t", 10);
    return !after.empty();
  });
  EXPECT_EQ(after.size(), 1u);
  EXPECT_TRUE(claim("t", 10).empty());
}

// Priority: a job of priority p counts as runnable p x priority_step (60 s here) earlier.
// Higher levels go first; a lower job that has waited longer than that still goes first
// (no starvation); a delayed job is not claimed early, whatever its level.
TEST_P(QueueContractTest, PriorityGoesFirstWithoutStarvingLowerLevels) {
  auto queue = Open();
  ASSERT_NE(queue, nullptr);
  auto enqueue = [&](int n, int priority, int64_t delay_ms = 0) {
    NewJob job = MakeJob(JobId(n), "t");
    job.priority = priority;
    job.run_at_ms = clock_.NowMs() + delay_ms;
    ASSERT_EQ(EnqueueSync(*queue, job).outcome, EnqueueOutcome::kAccepted);
  };
  enqueue(1, 0);
  clock_.Advance(milliseconds(10'000));
  enqueue(2, 2);               // counts as 110 s older than job 1
  enqueue(3, 3, 1'000'000);    // delayed: not before its time
  enqueue(4, 1);               // counts as 50 s older than job 1
  EXPECT_EQ(DepthOf(*queue, "t").ready, 3);
  EXPECT_EQ(DepthOf(*queue, "t").delayed, 1);
  std::vector<std::string> order;
  for (int i = 0; i < 3; ++i) {
    std::vector<Job> one = ClaimOk(*queue, "t", 1);
    ASSERT_EQ(one.size(), 1u);
    order.push_back(one[0].id);
    ASSERT_TRUE(FinishSync(*queue, Finished(one[0], Disposition::kSucceeded)).ok());
  }
  EXPECT_EQ(order, (std::vector<std::string>{JobId(2), JobId(4), JobId(1)}));
  EXPECT_TRUE(ClaimOk(*queue, "t", 10).empty());

  // A low job that has waited 130 s goes before a priority-2 job that just arrived.
  enqueue(5, 0);
  clock_.Advance(milliseconds(130'000));
  enqueue(6, 2);
  std::vector<Job> both = ClaimOk(*queue, "t", 2);
  EXPECT_EQ(Ids(both), (std::vector<std::string>{JobId(5), JobId(6)}));
  Result<Job> stored = queue->GetJob(JobId(6));
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ(stored->priority, 2);
}

// Debounce: a job stored with a debounce key cancels the job of its type still waiting
// under that key ("superseded by <id>"); one already running is left alone.
TEST_P(QueueContractTest, DebounceSupersedesTheJobWaitingUnderItsKey) {
  auto queue = Open();
  ASSERT_NE(queue, nullptr);
  auto enqueue = [&](int n, const std::string& debounce_key, const std::string& type = "t") {
    NewJob job = MakeJob(JobId(n), type);
    job.debounce_key = debounce_key;
    job.run_at_ms = clock_.NowMs() + 2000;  // what AssignJobKey makes of period = 2s
    ASSERT_EQ(EnqueueSync(*queue, job).outcome, EnqueueOutcome::kAccepted);
  };
  enqueue(1, "chat-1");
  clock_.Advance(milliseconds(100));
  enqueue(2, "chat-1");
  enqueue(3, "chat-2");
  enqueue(4, "chat-1", "u");  // debounce keys are per type
  Result<Job> first = queue->GetJob(JobId(1));
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(first->state, JobState::kCancelled);
  EXPECT_EQ(first->last_error, "superseded by " + JobId(2));
  EXPECT_EQ(DepthOf(*queue, "t").delayed, 2);
  EXPECT_EQ(DepthOf(*queue, "t").cancelled, 1);
  EXPECT_TRUE(ClaimOk(*queue, "t", 10).empty());
  clock_.Advance(milliseconds(2000));
  std::vector<Job> due = ClaimWithinSweep(*queue, "t", 10);
  EXPECT_EQ(Ids(due), (std::vector<std::string>{JobId(2), JobId(3)}));
  // Job 2 runs: a new event of its key waits its own period and leaves it running.
  enqueue(5, "chat-1");
  Result<Job> running = queue->GetJob(JobId(2));
  ASSERT_TRUE(running.ok());
  EXPECT_EQ(running->state, JobState::kInFlight);
  Result<Job> other_type = queue->GetJob(JobId(4));
  ASSERT_TRUE(other_type.ok());
  EXPECT_EQ(other_type->state, JobState::kReady);
}

TEST_P(QueueContractTest, ReleaseReturnsTheJobWithoutSpendingTheAttempt) {
  auto queue = Open();
  ASSERT_NE(queue, nullptr);
  ASSERT_EQ(EnqueueSync(*queue, MakeJob(JobId(1), "t")).outcome, EnqueueOutcome::kAccepted);
  std::vector<Job> claimed = ClaimOk(*queue, "t", 1);
  ASSERT_EQ(claimed.size(), 1u);
  JobFinish release = Finished(claimed[0], Disposition::kRelease, clock_.NowMs(), "shutdown");
  ASSERT_TRUE(FinishSync(*queue, release).ok());
  // The same attempt again is stale now.
  EXPECT_EQ(FinishSync(*queue, release).code(), StatusCode::kFailedPrecondition);
  std::vector<Job> again = ClaimOk(*queue, "t", 1);
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].attempt, 1);
  Result<Job> stored = queue->GetJob(JobId(1));
  ASSERT_TRUE(stored.ok());
  ASSERT_EQ(stored->attempts.size(), 1u);
  EXPECT_EQ(stored->attempts[0].error, "shutdown");
}

TEST_P(QueueContractTest, AReleaseCanLeaveNoAttemptRecord) {
  auto queue = Open();
  ASSERT_NE(queue, nullptr);
  ASSERT_EQ(EnqueueSync(*queue, MakeJob(JobId(1))).outcome, EnqueueOutcome::kAccepted);
  for (int i = 0; i < 3; ++i) {
    std::vector<Job> claimed = ClaimWithinSweep(*queue, "test.event", 1);
    ASSERT_EQ(claimed.size(), 1u);
    EXPECT_EQ(claimed[0].attempt, 1);  // deferrals do not spend attempts
    JobFinish deferred = Finished(claimed[0], Disposition::kRelease, clock_.NowMs());
    deferred.keep_record = false;
    ASSERT_TRUE(FinishSync(*queue, deferred).ok());
  }
  Result<Job> job = queue->GetJob(JobId(1));
  ASSERT_TRUE(job.ok());
  EXPECT_TRUE(job->attempts.empty());
}

TEST_P(QueueContractTest, DelayedJobWaitsForRunAt) {
  auto queue = Open();
  ASSERT_NE(queue, nullptr);
  NewJob job = MakeJob(JobId(1));
  job.run_at_ms = clock_.NowMs() + 10'000;
  ASSERT_EQ(EnqueueSync(*queue, job).outcome, EnqueueOutcome::kAccepted);
  TypeDepth depth = DepthOf(*queue, "test.event");
  EXPECT_EQ(depth.ready, 0);
  EXPECT_EQ(depth.delayed, 1);
  EXPECT_TRUE(ClaimOk(*queue, "test.event", 5).empty());
  clock_.Advance(milliseconds(9'999));
  EXPECT_TRUE(ClaimOk(*queue, "test.event", 5).empty());
  EXPECT_EQ(DepthOf(*queue, "test.event").delayed, 1);
  clock_.Advance(milliseconds(1));
  EXPECT_TRUE(WaitUntil([&] {
    TypeDepth now = DepthOf(*queue, "test.event");
    return now.ready == 1 && now.delayed == 0;
  }));
  std::vector<Job> claimed = ClaimWithinSweep(*queue, "test.event", 5);
  ASSERT_EQ(claimed.size(), 1u);
  EXPECT_EQ(claimed[0].run_at_ms, job.run_at_ms);
  EXPECT_EQ(claimed[0].attempt, 1);
}

TEST_P(QueueContractTest, ClaimHonoursPerTypeLimitsAndOrder) {
  auto queue = Open();
  ASSERT_NE(queue, nullptr);
  const int64_t now = clock_.NowMs();
  // Enqueued in this order; a2 and a0 tie on run_at, and a2 was enqueued first although
  // its id sorts later.
  const std::vector<std::pair<std::string, int64_t>> jobs_a = {
      {"a3", now - 1}, {"a2", now - 3}, {"a1", now - 2}, {"a0", now - 3}};
  for (const auto& [id, run_at] : jobs_a) {
    NewJob job = MakeJob(id, "a");
    job.run_at_ms = run_at;
    ASSERT_EQ(EnqueueSync(*queue, job).outcome, EnqueueOutcome::kAccepted);
  }
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(EnqueueSync(*queue, MakeJob("b" + std::to_string(i), "b")).outcome,
              EnqueueOutcome::kAccepted);
  }
  Result<std::vector<Job>> claimed =
      ClaimSync(*queue, {{"a", 3, 1000}, {"b", 1, 2000}, {"missing", 5, 1000}});
  ASSERT_TRUE(claimed.ok()) << claimed.status().ToString();
  // Oldest run_at first. The order of a tie is not part of the contract: SQLite gives the
  // earlier enqueue, Redis the lower id (ULIDs made in one millisecond on different hosts
  // have no defined order anyway). FIFO that matters is asked for with `ordering`.
  ASSERT_EQ(claimed->size(), 4u);
  std::vector<std::string> ids = Ids(*claimed);
  std::sort(ids.begin(), ids.begin() + 2);
  EXPECT_EQ(ids, (std::vector<std::string>{"a0", "a2", "a1", "b0"}));
  EXPECT_EQ((*claimed)[0].lease_until_ms, now + 1000);
  EXPECT_EQ((*claimed)[3].lease_until_ms, now + 2000);
  EXPECT_EQ(DepthOf(*queue, "a").ready, 1);
  EXPECT_EQ(DepthOf(*queue, "a").in_flight, 3);
  EXPECT_EQ(DepthOf(*queue, "b").ready, 2);
  EXPECT_EQ(DepthOf(*queue, "b").in_flight, 1);

  EXPECT_EQ(ClaimSync(*queue, {{"a", 1, 0}}).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ClaimSync(*queue, {{"a", -1, 10}}).status().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(ClaimOk(*queue, "a", 0).empty());
  EXPECT_EQ(DepthOf(*queue, "a").ready, 1);  // the failed claims took nothing
}

TEST_P(QueueContractTest, RetryRecordsAttemptAndRunsAtRunAt) {
  auto queue = Open();
  ASSERT_NE(queue, nullptr);
  ASSERT_EQ(EnqueueSync(*queue, MakeJob(JobId(1))).outcome, EnqueueOutcome::kAccepted);
  std::vector<Job> claimed = ClaimOk(*queue, "test.event", 1);
  ASSERT_EQ(claimed.size(), 1u);
  const int64_t retry_at = clock_.NowMs() + 5000;
  JobFinish finish = Finished(claimed[0], Disposition::kRetry, retry_at, "boom");
  finish.record.attempt = 99;  // the queue files it under the claimed attempt
  ASSERT_TRUE(FinishSync(*queue, finish).ok());

  Result<Job> job = queue->GetJob(JobId(1));
  ASSERT_TRUE(job.ok()) << job.status().ToString();
  EXPECT_EQ(job->state, JobState::kReady);
  EXPECT_EQ(job->attempt, 1);
  EXPECT_EQ(job->run_at_ms, retry_at);
  ASSERT_EQ(job->attempts.size(), 1u);
  EXPECT_EQ(job->attempts[0].attempt, 1);
  EXPECT_EQ(job->attempts[0].started_at_ms, 1001);
  EXPECT_EQ(job->attempts[0].duration_ms, 7);
  EXPECT_EQ(job->attempts[0].outcome, "failed");
  EXPECT_EQ(job->attempts[0].error, "boom");
  EXPECT_EQ(DepthOf(*queue, "test.event").delayed, 1);

  EXPECT_TRUE(ClaimOk(*queue, "test.event", 1).empty());
  clock_.Advance(milliseconds(5000));
  claimed = ClaimWithinSweep(*queue, "test.event", 1);
  ASSERT_EQ(claimed.size(), 1u);
  EXPECT_EQ(claimed[0].attempt, 2);
  ASSERT_TRUE(
      FinishSync(*queue, Finished(claimed[0], Disposition::kRetry, clock_.NowMs(), "again")).ok());
  job = queue->GetJob(JobId(1));
  ASSERT_TRUE(job.ok());
  ASSERT_EQ(job->attempts.size(), 2u);
  EXPECT_EQ(job->attempts[1].attempt, 2);
  EXPECT_EQ(job->attempts[1].error, "again");

  // A retry due now is runnable at once; success keeps the history with its own record.
  claimed = ClaimOk(*queue, "test.event", 1);
  ASSERT_EQ(claimed.size(), 1u);
  EXPECT_EQ(claimed[0].attempt, 3);
  ASSERT_TRUE(FinishSync(*queue, Finished(claimed[0], Disposition::kSucceeded)).ok());
  job = queue->GetJob(JobId(1));
  ASSERT_TRUE(job.ok());
  EXPECT_EQ(job->state, JobState::kSucceeded);
  ASSERT_EQ(job->attempts.size(), 3u);
  EXPECT_EQ(job->attempts[2].attempt, 3);
}

TEST_P(QueueContractTest, DeadLetterListReplayPurge) {
  auto queue = Open();
  ASSERT_NE(queue, nullptr);
  ASSERT_EQ(EnqueueSync(*queue, MakeJob(JobId(1))).outcome, EnqueueOutcome::kAccepted);
  std::vector<Job> claimed = ClaimOk(*queue, "test.event", 1);
  ASSERT_EQ(claimed.size(), 1u);
  ASSERT_TRUE(
      FinishSync(*queue, Finished(claimed[0], Disposition::kRetry, clock_.NowMs(), "e1")).ok());
  claimed = ClaimOk(*queue, "test.event", 1);
  ASSERT_EQ(claimed.size(), 1u);
  ASSERT_TRUE(FinishSync(*queue, Finished(claimed[0], Disposition::kDead, 0, "e2")).ok());

  EXPECT_EQ(DepthOf(*queue, "test.event").dead, 1);
  EXPECT_EQ(DepthOf(*queue, "test.event").in_flight, 0);
  Result<DeadListPage> page = queue->ListDead("", 10, "");
  ASSERT_TRUE(page.ok()) << page.status().ToString();
  ASSERT_EQ(page->items.size(), 1u);
  EXPECT_EQ(page->next_cursor, "");
  const Job& dead = page->items[0];
  EXPECT_EQ(dead.id, JobId(1));
  EXPECT_EQ(dead.state, JobState::kDead);
  EXPECT_EQ(dead.attempt, 2);
  EXPECT_EQ(dead.payload_json, MakeJob(JobId(1)).payload_json);
  ASSERT_EQ(dead.attempts.size(), 2u);
  EXPECT_EQ(dead.attempts[0].error, "e1");
  EXPECT_EQ(dead.attempts[1].error, "e2");
  Result<DeadListPage> other = queue->ListDead("other.type", 10, "");
  ASSERT_TRUE(other.ok());
  EXPECT_TRUE(other->items.empty());
  Result<DeadListPage> same = queue->ListDead("test.event", 10, "");
  ASSERT_TRUE(same.ok());
  EXPECT_EQ(same->items.size(), 1u);

  EXPECT_EQ(dead.last_error, "e2");

  // A replay is a new job (attempt 1 again) linked to the original, which stays as
  // history in state replayed with its attempts.
  ASSERT_TRUE(queue->Replay(JobId(1)).ok());
  EXPECT_EQ(queue->Replay(JobId(1)).code(), StatusCode::kNotFound);  // no longer dead
  EXPECT_EQ(queue->Replay("missing").code(), StatusCode::kNotFound);
  Result<Job> job = queue->GetJob(JobId(1));
  ASSERT_TRUE(job.ok());
  EXPECT_EQ(job->state, JobState::kReplayed);
  EXPECT_EQ(job->attempts.size(), 2u);  // history kept
  ASSERT_FALSE(job->replayed_as.empty());
  const std::string again_id = job->replayed_as;
  Result<Job> again = queue->GetJob(again_id);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(again->state, JobState::kReady);
  EXPECT_EQ(again->attempt, 0);
  EXPECT_TRUE(again->attempts.empty());
  EXPECT_EQ(again->replay_of, JobId(1));
  EXPECT_EQ(again->payload_json, MakeJob(JobId(1)).payload_json);
  EXPECT_EQ(again->dedupe_key, dead.dedupe_key);
  EXPECT_EQ(DepthOf(*queue, "test.event").dead, 0);
  EXPECT_EQ(DepthOf(*queue, "test.event").ready, 1);
  EXPECT_EQ(DepthOf(*queue, "test.event").replayed, 1);
  claimed = ClaimOk(*queue, "test.event", 1);
  ASSERT_EQ(claimed.size(), 1u);
  EXPECT_EQ(claimed[0].id, again_id);
  EXPECT_EQ(claimed[0].attempt, 1);
  // Found from the original by its link key.
  Result<JobPage> linked = queue->ListJobs(ByKey("replay_of:" + JobId(1)), 10, "");
  ASSERT_TRUE(linked.ok()) << linked.status().ToString();
  ASSERT_EQ(linked->items.size(), 1u);
  EXPECT_EQ(linked->items[0].id, again_id);

  EXPECT_EQ(queue->Purge(again_id).code(), StatusCode::kNotFound);  // in flight, not dead
  ASSERT_TRUE(FinishSync(*queue, Finished(claimed[0], Disposition::kDead, 0, "e3")).ok());
  again = queue->GetJob(again_id);
  ASSERT_TRUE(again.ok());
  ASSERT_EQ(again->attempts.size(), 1u);
  EXPECT_EQ(again->attempts[0].attempt, 1);
  EXPECT_EQ(again->attempts[0].error, "e3");
  ASSERT_TRUE(queue->Purge(again_id).ok());
  EXPECT_EQ(queue->GetJob(again_id).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(queue->Purge(again_id).code(), StatusCode::kNotFound);
  EXPECT_EQ(DepthOf(*queue, "test.event").dead, 0);
  linked = queue->ListJobs(ByKey("replay_of:" + JobId(1)), 10, "");
  ASSERT_TRUE(linked.ok());
  EXPECT_TRUE(linked->items.empty());  // its search keys went with it
}

TEST_P(QueueContractTest, ReplayAllAndPurgeAllReportProgress) {
  auto queue = Open();
  ASSERT_NE(queue, nullptr);
  MakeDeadJobs(*queue, "a", 0, 1200);
  MakeDeadJobs(*queue, "b", 10'000, 600);
  ASSERT_FALSE(HasFatalFailure());

  std::vector<int64_t> progress;
  Result<int64_t> replayed = queue->ReplayAll("a", [&](int64_t n) { progress.push_back(n); });
  ASSERT_TRUE(replayed.ok()) << replayed.status().ToString();
  EXPECT_EQ(*replayed, 1200);
  // Batch sizes are the backend's choice; progress counts up to the total.
  ASSERT_FALSE(progress.empty());
  for (size_t i = 1; i < progress.size(); ++i) EXPECT_GT(progress[i], progress[i - 1]);
  EXPECT_GT(progress.front(), 0);
  EXPECT_EQ(progress.back(), 1200);
  EXPECT_EQ(DepthOf(*queue, "a").ready, 1200);
  EXPECT_EQ(DepthOf(*queue, "a").dead, 0);
  EXPECT_EQ(DepthOf(*queue, "b").dead, 600);

  Result<int64_t> purged = queue->PurgeAll("b");
  ASSERT_TRUE(purged.ok()) << purged.status().ToString();
  EXPECT_EQ(*purged, 600);
  EXPECT_EQ(DepthOf(*queue, "b").dead, 0);
  EXPECT_EQ(queue->GetJob(JobId(10'000)).status().code(), StatusCode::kNotFound);
  Result<int64_t> none_purged = queue->PurgeAll("");
  ASSERT_TRUE(none_purged.ok());
  EXPECT_EQ(*none_purged, 0);
  Result<int64_t> none_replayed = queue->ReplayAll("", nullptr);
  ASSERT_TRUE(none_replayed.ok());
  EXPECT_EQ(*none_replayed, 0);
  // Replayed jobs kept their history; their replays run from attempt 1.
  Result<Job> job = queue->GetJob(JobId(5));
  ASSERT_TRUE(job.ok());
  EXPECT_EQ(job->state, JobState::kReplayed);
  ASSERT_EQ(job->attempts.size(), 1u);
  EXPECT_EQ(job->attempts[0].outcome, "lease_expired");
  EXPECT_EQ(job->last_error, "lease expired: worker died or stalled");
  Result<Job> again = queue->GetJob(job->replayed_as);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(again->state, JobState::kReady);
  EXPECT_EQ(again->attempt, 0);
  EXPECT_EQ(DepthOf(*queue, "a").replayed, 1200);
}

TEST_P(QueueContractTest, ListDeadPagesNewestFirst) {
  auto queue = Open();
  ASSERT_NE(queue, nullptr);
  for (int i = 0; i < 5; ++i) {
    MakeDeadJobs(*queue, i % 2 == 0 ? "even" : "odd", i, 1);
    ASSERT_FALSE(HasFatalFailure());
  }
  std::vector<std::string> seen;
  std::string cursor;
  for (int pages = 0; pages < 10; ++pages) {
    Result<DeadListPage> page = queue->ListDead("", 2, cursor);
    ASSERT_TRUE(page.ok()) << page.status().ToString();
    EXPECT_LE(page->items.size(), 2u);
    for (const Job& job : page->items) seen.push_back(job.id);
    cursor = page->next_cursor;
    if (cursor.empty()) break;
  }
  EXPECT_EQ(seen, (std::vector<std::string>{JobId(4), JobId(3), JobId(2), JobId(1), JobId(0)}));
  Result<DeadListPage> odd = queue->ListDead("odd", 10, "");
  ASSERT_TRUE(odd.ok());
  ASSERT_EQ(odd->items.size(), 2u);
  EXPECT_EQ(odd->items[0].id, JobId(3));
  EXPECT_EQ(odd->items[1].id, JobId(1));
  EXPECT_EQ(odd->next_cursor, "");
  EXPECT_EQ(queue->ListDead("", 2, "garbage").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(queue->ListDead("", 0, "").status().code(), StatusCode::kInvalidArgument);
}

// Jobs that died in the same millisecond share their sort time: the cursor must still
// page through them without repeating or skipping any.
TEST_P(QueueContractTest, ListDeadCursorHandlesJobsThatDiedTogether) {
  auto queue = Open();
  ASSERT_NE(queue, nullptr);
  MakeDeadJobs(*queue, "t", 0, 7);  // all die in one sweep, at one clock value
  ASSERT_FALSE(HasFatalFailure());
  std::vector<std::string> seen;
  std::string cursor;
  int pages = 0;
  for (; pages < 20; ++pages) {
    Result<DeadListPage> page = queue->ListDead("t", 3, cursor);
    ASSERT_TRUE(page.ok()) << page.status().ToString();
    EXPECT_LE(page->items.size(), 3u);
    for (const Job& job : page->items) seen.push_back(job.id);
    cursor = page->next_cursor;
    if (cursor.empty()) break;
  }
  EXPECT_LE(pages, 3);
  std::vector<std::string> sorted = seen;
  std::sort(sorted.begin(), sorted.end());
  std::vector<std::string> want;
  for (int i = 0; i < 7; ++i) want.push_back(JobId(i));
  EXPECT_EQ(sorted, want) << "pages returned: " << ::testing::PrintToString(seen);
}

TEST_P(QueueContractTest, LeaseExpiryRedeliversAndStaleFinishFails) {
  auto queue = Open();
  ASSERT_NE(queue, nullptr);
  std::atomic<int> wakeups{0};
  queue->SetWakeup([&] { wakeups.fetch_add(1); });
  NewJob new_job = MakeJob(JobId(1));
  new_job.max_attempts = 2;
  ASSERT_EQ(EnqueueSync(*queue, new_job).outcome, EnqueueOutcome::kAccepted);
  std::vector<Job> first = ClaimOk(*queue, "test.event", 1, 1000);
  ASSERT_EQ(first.size(), 1u);
  const int64_t claimed_at = clock_.NowMs();

  clock_.Advance(milliseconds(999));
  EXPECT_TRUE(ClaimOk(*queue, "test.event", 1, 1000).empty());  // lease still held
  const int wakeups_before = wakeups.load();
  clock_.Advance(milliseconds(1));
  std::vector<Job> second = ClaimWithinSweep(*queue, "test.event", 1, 1000);
  ASSERT_EQ(second.size(), 1u) << "the expired lease was not reclaimed within "
                               << kSweepBound.count() << " ms";
  EXPECT_EQ(second[0].id, JobId(1));
  EXPECT_EQ(second[0].attempt, 2);
  EXPECT_TRUE(WaitUntil([&] { return wakeups.load() > wakeups_before; }))
      << "no wakeup for the reclaimed job";

  EXPECT_EQ(FinishSync(*queue, Finished(first[0], Disposition::kSucceeded)).code(),
            StatusCode::kFailedPrecondition);
  EXPECT_EQ(FinishSync(*queue, Finished(first[0], Disposition::kRetry, 0)).code(),
            StatusCode::kFailedPrecondition);
  Result<Job> job = queue->GetJob(JobId(1));
  ASSERT_TRUE(job.ok());
  EXPECT_EQ(job->state, JobState::kInFlight);
  EXPECT_EQ(job->attempt, 2);
  ASSERT_EQ(job->attempts.size(), 1u);
  EXPECT_EQ(job->attempts[0].attempt, 1);
  EXPECT_EQ(job->attempts[0].outcome, "lease_expired");
  EXPECT_EQ(job->attempts[0].error, "lease expired: worker died or stalled");
  EXPECT_EQ(job->attempts[0].started_at_ms, claimed_at);
  EXPECT_EQ(job->attempts[0].duration_ms, 1000);

  // The last attempt's lease expires too: dead, with both records.
  clock_.Advance(milliseconds(1000));
  EXPECT_TRUE(WaitUntil([&] { return DepthOf(*queue, "test.event").dead == 1; }))
      << "the last attempt's expired lease did not dead-letter the job";
  EXPECT_TRUE(ClaimOk(*queue, "test.event", 1, 1000).empty());
  Result<DeadListPage> dead = queue->ListDead("", 10, "");
  ASSERT_TRUE(dead.ok());
  ASSERT_EQ(dead->items.size(), 1u);
  ASSERT_EQ(dead->items[0].attempts.size(), 2u);
  EXPECT_EQ(dead->items[0].attempts[1].attempt, 2);
  EXPECT_EQ(dead->items[0].attempts[1].outcome, "lease_expired");
  EXPECT_EQ(FinishSync(*queue, Finished(second[0], Disposition::kSucceeded)).code(),
            StatusCode::kFailedPrecondition);
}

TEST_P(QueueContractTest, FollowUpsAreStoredWithTheSuccessAndOnlyOnce) {
  auto queue = Open();
  ASSERT_NE(queue, nullptr);
  ASSERT_EQ(EnqueueSync(*queue, MakeJob(JobId(1))).outcome, EnqueueOutcome::kAccepted);
  std::vector<Job> claimed = ClaimOk(*queue, "test.event", 1);
  ASSERT_EQ(claimed.size(), 1u);

  JobFinish done = Finished(claimed[0], Disposition::kSucceeded);
  // A short attempt: the follow-ups' dedupe keys live for dedupe_ttl, not for the
  // attempt's duration (a Redis script once read one argument for the other).
  done.record.duration_ms = 1;
  done.follow_ups.push_back(MakeJob(JobId(2), "action:api", {"action:api:" + JobId(1) + ":0"}));
  done.follow_ups.push_back(MakeJob(JobId(3), "action:api", {"action:api:" + JobId(1) + ":1"}));
  ASSERT_TRUE(FinishSync(*queue, done).ok());
  EXPECT_EQ(DepthOf(*queue, "test.event").ready + DepthOf(*queue, "test.event").in_flight, 0);
  std::vector<Job> actions = ClaimOk(*queue, "action:api", 10);
  ASSERT_EQ(actions.size(), 2u);
  EXPECT_EQ(actions[0].dedupe_key, "action:api:" + JobId(1) + ":0");
  EXPECT_EQ(actions[0].traceparent, MakeJob(JobId(2)).traceparent);

  // The handler ran again (its first finish was lost to a crash, say): the same keys
  // create nothing new, and a stale finish stores nothing at all.
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  ASSERT_EQ(EnqueueSync(*queue, MakeJob(JobId(4))).outcome, EnqueueOutcome::kAccepted);
  std::vector<Job> again = ClaimOk(*queue, "test.event", 1);
  ASSERT_EQ(again.size(), 1u);
  JobFinish repeat = Finished(again[0], Disposition::kSucceeded);
  repeat.follow_ups.push_back(MakeJob(JobId(5), "action:api", {"action:api:" + JobId(1) + ":0"}));
  repeat.follow_ups.push_back(MakeJob(JobId(6), "action:api", {"action:api:" + JobId(4) + ":0"}));
  ASSERT_TRUE(FinishSync(*queue, repeat).ok());
  std::vector<Job> new_actions = ClaimOk(*queue, "action:api", 10);
  ASSERT_EQ(new_actions.size(), 1u);
  EXPECT_EQ(new_actions[0].id, JobId(6));
  JobFinish stale = Finished(claimed[0], Disposition::kSucceeded);
  stale.follow_ups.push_back(MakeJob(JobId(7), "action:api", {"action:api:stale"}));
  EXPECT_EQ(FinishSync(*queue, stale).code(), StatusCode::kFailedPrecondition);
  EXPECT_FALSE(queue->GetJob(JobId(7)).ok());
}

TEST_P(QueueContractTest, FollowUpsIgnoreMaxDepthAndAnInvalidOneRefusesTheFinish) {
  config_.max_depth = 1;
  auto queue = Open();
  ASSERT_NE(queue, nullptr);
  ASSERT_EQ(EnqueueSync(*queue, MakeJob(JobId(1))).outcome, EnqueueOutcome::kAccepted);
  std::vector<Job> claimed = ClaimOk(*queue, "test.event", 1);
  ASSERT_EQ(claimed.size(), 1u);
  ASSERT_EQ(EnqueueSync(*queue, MakeJob(JobId(2))).outcome, EnqueueOutcome::kAccepted);
  EXPECT_EQ(EnqueueSync(*queue, MakeJob(JobId(3))).outcome, EnqueueOutcome::kOverloaded);

  JobFinish invalid = Finished(claimed[0], Disposition::kSucceeded);
  invalid.follow_ups.push_back(MakeJob(JobId(4), "action:api"));
  invalid.follow_ups.push_back(MakeJob("", "action:api"));
  EXPECT_EQ(FinishSync(*queue, invalid).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(queue->GetJob(JobId(1))->state, JobState::kInFlight);  // nothing changed
  EXPECT_FALSE(queue->GetJob(JobId(4)).ok());

  // Accepted work's actions are never refused for depth: that would lose them.
  JobFinish done = Finished(claimed[0], Disposition::kSucceeded);
  done.follow_ups.push_back(MakeJob(JobId(4), "action:api"));
  done.follow_ups.push_back(MakeJob(JobId(5), "action:api"));
  ASSERT_TRUE(FinishSync(*queue, done).ok());
  EXPECT_EQ(DepthOf(*queue, "action:api").ready, 2);
}

TEST_P(QueueContractTest, WakeupOnlyForRunnableJobs) {
  auto queue = Open();
  ASSERT_NE(queue, nullptr);
  std::atomic<int> wakeups{0};
  queue->SetWakeup([&] { wakeups.fetch_add(1); });
  NewJob delayed = MakeJob(JobId(1));
  delayed.run_at_ms = clock_.NowMs() + 60'000;
  ASSERT_EQ(EnqueueSync(*queue, delayed).outcome, EnqueueOutcome::kAccepted);
  // Proving an absence needs a wait: longer than one background sweep.
  std::this_thread::sleep_for(milliseconds(400));
  EXPECT_EQ(wakeups.load(), 0);
  ASSERT_EQ(EnqueueSync(*queue, MakeJob(JobId(2))).outcome, EnqueueOutcome::kAccepted);
  // At least one: a wakeup is a hint to claim now, and an extra one only costs an empty
  // claim (the redis backend may hear its own commit again through its subscription).
  EXPECT_TRUE(WaitUntil([&] { return wakeups.load() >= 1; })) << "no wakeup for a runnable job";
}

TEST_P(QueueContractTest, CloseDrainsSubmittedOperationsAndRejectsLaterOnes) {
  config_.timeout = kBurstTimeout;
  auto queue = Open();
  ASSERT_NE(queue, nullptr);
  auto tally = std::make_shared<EnqueueTally>();
  for (int i = 0; i < 2000; ++i) queue->Enqueue(MakeJob(JobId(i)), tally->Callback());
  queue->Close();
  EXPECT_EQ(tally->answered.load(), 2000);  // every callback ran before Close returned
  EXPECT_EQ(tally->accepted.load(), 2000);
  queue->Close();  // idempotent

  EnqueueResult late = EnqueueSync(*queue, MakeJob(JobId(5000)));
  EXPECT_EQ(late.status.code(), StatusCode::kUnavailable);
  EXPECT_EQ(ClaimSync(*queue, {{"test.event", 1, 1000}}).status().code(), StatusCode::kUnavailable);
  EXPECT_FALSE(queue->Health().ready);
  EXPECT_EQ(queue->Stats().status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(queue->Replay("x").code(), StatusCode::kUnavailable);
  queue.reset();

  queue = Open();
  ASSERT_NE(queue, nullptr);
  EXPECT_EQ(DepthOf(*queue, "test.event").ready, 2000);
  EXPECT_EQ(queue->GetJob(JobId(5000)).status().code(), StatusCode::kNotFound);
}

// Health (queue/store_health.h): /readyz reads what the writer thread saw, and a
// store that refuses writes is "not ready" from the first failed write until one
// succeeds again, without a restart.
TEST_P(QueueContractTest, NotReadyWhileTheStoreRefusesWritesThenReadyAgain) {
  auto queue = Open();
  ASSERT_NE(queue, nullptr);
  EXPECT_TRUE(queue->Health().ready) << queue->Health().reason;

  RefuseWrites();
  EnqueueResult refused = EnqueueSync(*queue, MakeJob(JobId(1), "t", {"k1"}));
  EXPECT_EQ(refused.status.code(), StatusCode::kUnavailable) << refused.status.ToString();
  QueueHealth health = queue->Health();  // already said before the 503's callback ran
  EXPECT_FALSE(health.ready);
  EXPECT_NE(health.reason.find(GetParam() == "redis" ? "OOM" : "full"), std::string::npos)
      << health.reason;
  EXPECT_GT(health.since_ms, 0);

  AcceptWrites();
  EXPECT_TRUE(WaitUntil([&] { return queue->Health().ready; })) << queue->Health().reason;
  // Nothing of the refused job was kept: the same key is not a duplicate.
  EnqueueResult stored = EnqueueSync(*queue, MakeJob(JobId(1), "t", {"k1"}));
  ASSERT_TRUE(stored.status.ok()) << stored.status.ToString();
  EXPECT_EQ(stored.outcome, EnqueueOutcome::kAccepted);
  EXPECT_EQ(DepthOf(*queue, "t").ready, 1);
}

// Without any traffic, the writer thread's idle probe finds a store that stopped
// taking writes (a disk that filled up overnight), and finds it back.
TEST_P(QueueContractTest, AnIdleQueueNoticesWhenTheStoreStopsTakingWrites) {
  auto queue = Open();
  ASSERT_NE(queue, nullptr);
  RefuseWrites();
  EXPECT_TRUE(WaitUntil([&] { return !queue->Health().ready; }, milliseconds(5'000)));
  AcceptWrites();
  EXPECT_TRUE(WaitUntil([&] { return queue->Health().ready; })) << queue->Health().reason;
}

// A hung store (a stopped Redis, a stalled disk) is "not ready" once it has kept the
// writer for queue.timeout, and enqueues meanwhile are answered within the timeout,
// unstored, instead of waiting for it.
TEST_P(QueueContractTest, AHungStoreIsNotReadyAndEnqueuesAreAnsweredWithinTheTimeout) {
  config_.timeout = milliseconds(500);
  auto queue = Open();
  ASSERT_NE(queue, nullptr);
  Hang();
  struct ResumeAtExit {
    std::function<void()> resume;
    ~ResumeAtExit() { resume(); }
  } resume_at_exit{[this] { Resume(); }};

  auto first = std::make_shared<EnqueueTally>();
  queue->Enqueue(MakeJob(JobId(1)), first->Callback());  // reaches the store, and hangs
  EXPECT_TRUE(WaitUntil([&] { return !queue->Health().ready; }, milliseconds(2'000)));
  EXPECT_FALSE(queue->Health().reason.empty());

  for (int i = 2; i <= 4; ++i) {
    const auto start = std::chrono::steady_clock::now();
    EnqueueResult answer = EnqueueSync(*queue, MakeJob(JobId(i)));
    const auto took = std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::now() -
                                                               start);
    EXPECT_EQ(answer.status.code(), StatusCode::kUnavailable) << answer.status.ToString();
    EXPECT_LE(took, config_.timeout + milliseconds(300)) << "enqueue " << i;
  }

  Resume();
  EXPECT_TRUE(first->WaitAnswered(1));
  EXPECT_TRUE(WaitUntil([&] { return queue->Health().ready; }, milliseconds(5'000)))
      << queue->Health().reason;
  for (int i = 2; i <= 4; ++i) {
    EXPECT_EQ(queue->GetJob(JobId(i)).status().code(), StatusCode::kNotFound) << "job " << i;
  }
  EnqueueResult after = EnqueueSync(*queue, MakeJob(JobId(5)));
  EXPECT_TRUE(after.status.ok()) << after.status.ToString();
}

// Two queue objects on one store, like an `ingest` and a `worker` process.
TEST_P(QueueContractTest, TwoQueuesOnOneStore) {
  config_.timeout = kBurstTimeout;
  auto ingest = Open();
  auto worker = Open();
  ASSERT_NE(ingest, nullptr);
  ASSERT_NE(worker, nullptr);
  ASSERT_EQ(EnqueueSync(*ingest, MakeJob(JobId(0), "t", {"shared"})).outcome,
            EnqueueOutcome::kAccepted);
  EnqueueResult dup = EnqueueSync(*worker, MakeJob(JobId(1), "t", {"shared"}));
  EXPECT_EQ(dup.outcome, EnqueueOutcome::kDuplicate);
  EXPECT_EQ(dup.job_id, JobId(0));

  // Both write at once.
  constexpr int kEach = 1000;
  auto tally = std::make_shared<EnqueueTally>();
  auto produce = [&](Queue& queue, int first) {
    for (int i = 0; i < kEach; ++i) {
      queue.Enqueue(MakeJob(JobId(first + i), "t", {"k" + std::to_string(first + i)}),
                    tally->Callback());
    }
  };
  std::thread a([&] { produce(*ingest, 100); });
  std::thread b([&] { produce(*worker, 100'000); });
  a.join();
  b.join();
  ASSERT_TRUE(tally->WaitAnswered(2 * kEach));
  EXPECT_EQ(tally->accepted.load(), 2 * kEach);

  std::vector<Job> claimed;
  for (int tries = 0; tries < 20 && claimed.size() < 2 * kEach + 1; ++tries) {
    std::vector<Job> more = ClaimOk(*worker, "t", 500);
    claimed.insert(claimed.end(), more.begin(), more.end());
  }
  ASSERT_EQ(claimed.size(), 2u * kEach + 1);
  EXPECT_EQ(DepthOf(*ingest, "t").in_flight, 2 * kEach + 1);  // the other object sees them
  for (const Job& job : claimed) {
    ASSERT_TRUE(FinishSync(*worker, Finished(job, Disposition::kSucceeded)).ok());
  }
  TypeDepth depth = DepthOf(*ingest, "t");
  EXPECT_EQ(depth.ready + depth.delayed + depth.in_flight + depth.dead, 0);
  EXPECT_EQ(depth.succeeded, 2 * kEach + 1);
}

TEST_P(QueueContractTest, ThroughputCountsEachStoredJobOnce) {
  config_.max_depth = 4;
  auto queue = Open();
  ASSERT_NE(queue, nullptr);
  Result<std::vector<TypeThroughput>> empty = queue->Throughput(5 * 60'000);
  ASSERT_TRUE(empty.ok()) << empty.status().ToString();
  EXPECT_TRUE(empty->empty());

  ASSERT_EQ(EnqueueSync(*queue, MakeJob(JobId(1), "a", {"k1"})).outcome, EnqueueOutcome::kAccepted);
  ASSERT_EQ(EnqueueSync(*queue, MakeJob(JobId(2), "a", {"k2"})).outcome, EnqueueOutcome::kAccepted);
  ASSERT_EQ(EnqueueSync(*queue, MakeJob(JobId(3), "b")).outcome, EnqueueOutcome::kAccepted);
  // Neither a duplicate, nor an id that exists, nor a refusal for depth is an arrival.
  ASSERT_EQ(EnqueueSync(*queue, MakeJob(JobId(4), "a", {"k1"})).outcome,
            EnqueueOutcome::kDuplicate);
  EXPECT_EQ(EnqueueSync(*queue, MakeJob(JobId(1), "a")).status.code(), StatusCode::kAlreadyExists);
  NewJob delayed = MakeJob(JobId(5), "a");
  delayed.run_at_ms = clock_.NowMs() + 60'000;  // a delayed job arrives when it is stored
  ASSERT_EQ(EnqueueSync(*queue, delayed).outcome, EnqueueOutcome::kAccepted);
  ASSERT_EQ(EnqueueSync(*queue, MakeJob(JobId(6), "a")).outcome, EnqueueOutcome::kOverloaded);

  TypeThroughput a = ThroughputOf(*queue, "a");
  EXPECT_EQ(a.arrived, 3);
  EXPECT_EQ(a.finished, 0);
  EXPECT_EQ(a.busy_ms, 0);
  EXPECT_EQ(ThroughputOf(*queue, "b").arrived, 1);
  // A fresh store: the rates cover the time since its first count (at least a second).
  EXPECT_EQ(a.window_ms, 1000);
  clock_.Advance(seconds(30));
  EXPECT_EQ(ThroughputOf(*queue, "a").window_ms, 30'000);

  // Another queue object on the same store (another process) reads the same numbers.
  auto other = Open();
  ASSERT_NE(other, nullptr);
  EXPECT_EQ(ThroughputOf(*other, "a").arrived, 3);
  EXPECT_EQ(ThroughputOf(*other, "b").arrived, 1);
}

TEST_P(QueueContractTest, ThroughputCountsFinishedAttemptsAndTheirHandlerTime) {
  auto queue = Open();
  ASSERT_NE(queue, nullptr);
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(EnqueueSync(*queue, MakeJob(JobId(i), "t")).outcome, EnqueueOutcome::kAccepted);
  }
  std::vector<Job> claimed = ClaimOk(*queue, "t", 3);
  ASSERT_EQ(claimed.size(), 3u);
  auto finish = [&](const Job& job, Disposition disposition, int64_t duration_ms) {
    JobFinish f = Finished(job, disposition, clock_.NowMs());
    f.record.duration_ms = duration_ms;
    return FinishSync(*queue, f);
  };
  ASSERT_TRUE(finish(claimed[0], Disposition::kSucceeded, 40).ok());
  ASSERT_TRUE(finish(claimed[1], Disposition::kRetry, 60).ok());
  ASSERT_TRUE(finish(claimed[2], Disposition::kDead, 25).ok());
  TypeThroughput t = ThroughputOf(*queue, "t");
  EXPECT_EQ(t.arrived, 3);
  EXPECT_EQ(t.finished, 3);
  EXPECT_EQ(t.busy_ms, 125);

  // A stale finish changes nothing, and a release is not an attempt that finished.
  EXPECT_EQ(finish(claimed[0], Disposition::kSucceeded, 1000).code(),
            StatusCode::kFailedPrecondition);
  std::vector<Job> again = ClaimOk(*queue, "t", 1);
  ASSERT_EQ(again.size(), 1u);
  ASSERT_TRUE(finish(again[0], Disposition::kRelease, 500).ok());
  t = ThroughputOf(*queue, "t");
  EXPECT_EQ(t.arrived, 3);  // a retry is not a new arrival
  EXPECT_EQ(t.finished, 3);
  EXPECT_EQ(t.busy_ms, 125);
}

TEST_P(QueueContractTest, ThroughputCountsStoredFollowUpsAsArrivals) {
  auto queue = Open();
  ASSERT_NE(queue, nullptr);
  ASSERT_EQ(EnqueueSync(*queue, MakeJob(JobId(1))).outcome, EnqueueOutcome::kAccepted);
  ASSERT_EQ(EnqueueSync(*queue, MakeJob(JobId(2))).outcome, EnqueueOutcome::kAccepted);
  std::vector<Job> claimed = ClaimOk(*queue, "test.event", 2);
  ASSERT_EQ(claimed.size(), 2u);
  JobFinish done = Finished(claimed[0], Disposition::kSucceeded);
  done.follow_ups.push_back(MakeJob(JobId(10), "action:api", {"action:api:1:0"}));
  done.follow_ups.push_back(MakeJob(JobId(11), "action:api", {"action:api:1:1"}));
  ASSERT_TRUE(FinishSync(*queue, done).ok());
  // The second handler returned one key already stored: only the new one arrives.
  JobFinish repeat = Finished(claimed[1], Disposition::kSucceeded);
  repeat.follow_ups.push_back(MakeJob(JobId(12), "action:api", {"action:api:1:0"}));
  repeat.follow_ups.push_back(MakeJob(JobId(13), "action:api", {"action:api:2:0"}));
  ASSERT_TRUE(FinishSync(*queue, repeat).ok());

  TypeThroughput actions = ThroughputOf(*queue, "action:api");
  EXPECT_EQ(actions.arrived, 3);
  EXPECT_EQ(actions.finished, 0);
  TypeThroughput jobs = ThroughputOf(*queue, "test.event");
  EXPECT_EQ(jobs.arrived, 2);
  EXPECT_EQ(jobs.finished, 2);
  EXPECT_EQ(jobs.busy_ms, 14);  // Finished() records 7 ms
}

TEST_P(QueueContractTest, ThroughputReadsOnlyTheWindowsMinutes) {
  auto queue = Open();
  ASSERT_NE(queue, nullptr);
  const int64_t first_at = clock_.NowMs();
  ASSERT_EQ(EnqueueSync(*queue, MakeJob(JobId(1), "t")).outcome, EnqueueOutcome::kAccepted);
  clock_.Advance(milliseconds(10 * 60'000));
  ASSERT_EQ(EnqueueSync(*queue, MakeJob(JobId(2), "t")).outcome, EnqueueOutcome::kAccepted);
  ASSERT_EQ(EnqueueSync(*queue, MakeJob(JobId(3), "t")).outcome, EnqueueOutcome::kAccepted);

  // Five minutes: whole minutes that start within them, so 4 to 5 minutes.
  TypeThroughput recent = ThroughputOf(*queue, "t", 5 * 60'000);
  EXPECT_EQ(recent.arrived, 2);
  EXPECT_GT(recent.window_ms, 4 * 60'000);
  EXPECT_LE(recent.window_ms, 5 * 60'000);
  // An hour: everything, over the time since the store's first count.
  TypeThroughput hour = ThroughputOf(*queue, "t", 60 * 60'000);
  EXPECT_EQ(hour.arrived, 3);
  EXPECT_EQ(hour.window_ms, clock_.NowMs() - first_at);
  // A window past the longest is cut to it; none reads the current minute.
  EXPECT_EQ(ThroughputOf(*queue, "t", 24 * 60 * 60'000).arrived, 3);
  TypeThroughput now = ThroughputOf(*queue, "t", 0);
  EXPECT_EQ(now.arrived, 2);
  EXPECT_LE(now.window_ms, 60'000);
  EXPECT_GE(now.window_ms, 1000);
  // After the hour has passed, nothing is left in it.
  clock_.Advance(milliseconds(61 * 60'000));
  EXPECT_EQ(ThroughputOf(*queue, "t", 60 * 60'000).arrived, 0);
}

TEST_P(QueueContractTest, StatsCountEachTypeAndState) {
  auto queue = Open();
  ASSERT_NE(queue, nullptr);
  Result<std::vector<TypeDepth>> empty = queue->Stats();
  ASSERT_TRUE(empty.ok()) << empty.status().ToString();
  EXPECT_TRUE(empty->empty());

  // Type "a": 1 in flight, 1 dead, 2 ready, 1 delayed. Type "b": 1 ready.
  for (int i = 0; i < 4; ++i) {
    ASSERT_EQ(EnqueueSync(*queue, MakeJob(JobId(i), "a")).outcome, EnqueueOutcome::kAccepted);
  }
  std::vector<Job> claimed = ClaimOk(*queue, "a", 2);
  ASSERT_EQ(claimed.size(), 2u);
  ASSERT_TRUE(FinishSync(*queue, Finished(claimed[1], Disposition::kDead, 0, "bad")).ok());
  NewJob delayed = MakeJob(JobId(10), "a");
  delayed.run_at_ms = clock_.NowMs() + 1000;
  ASSERT_EQ(EnqueueSync(*queue, delayed).outcome, EnqueueOutcome::kAccepted);
  ASSERT_EQ(EnqueueSync(*queue, MakeJob(JobId(20), "b")).outcome, EnqueueOutcome::kAccepted);

  Result<std::vector<TypeDepth>> stats = queue->Stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->size(), 2u);
  TypeDepth a = DepthOf(*queue, "a");
  EXPECT_EQ(a.ready, 2);
  EXPECT_EQ(a.delayed, 1);
  EXPECT_EQ(a.in_flight, 1);
  EXPECT_EQ(a.dead, 1);
  TypeDepth b = DepthOf(*queue, "b");
  EXPECT_EQ(b.ready, 1);
  EXPECT_EQ(b.delayed, 0);
  EXPECT_EQ(b.in_flight, 0);
  EXPECT_EQ(b.dead, 0);

  // GetJob reports each state.
  Result<Job> in_flight = queue->GetJob(claimed[0].id);
  ASSERT_TRUE(in_flight.ok());
  EXPECT_EQ(in_flight->state, JobState::kInFlight);
  Result<Job> dead = queue->GetJob(claimed[1].id);
  ASSERT_TRUE(dead.ok());
  EXPECT_EQ(dead->state, JobState::kDead);
  ASSERT_EQ(dead->attempts.size(), 1u);
  EXPECT_EQ(dead->attempts[0].error, "bad");
  Result<Job> waiting = queue->GetJob(JobId(10));
  ASSERT_TRUE(waiting.ok());
  EXPECT_EQ(waiting->state, JobState::kReady);
  EXPECT_EQ(waiting->run_at_ms, delayed.run_at_ms);
  EXPECT_EQ(queue->GetJob("missing").status().code(), StatusCode::kNotFound);

  // The delayed job becomes ready when its time comes.
  clock_.Advance(milliseconds(1000));
  EXPECT_TRUE(WaitUntil([&] {
    TypeDepth now = DepthOf(*queue, "a");
    return now.ready == 3 && now.delayed == 0;
  }));
}

// ---- history, search, operator actions (issue 15) -----------------------------------

// Every id a filter finds, paging with a small limit: also proves pages neither repeat
// nor skip a job.
std::vector<std::string> ListAll(Queue& queue, const JobFilter& filter, int limit = 3) {
  std::vector<std::string> ids;
  std::string cursor;
  for (int pages = 0; pages < 1000; ++pages) {
    Result<JobPage> page = queue.ListJobs(filter, limit, cursor);
    EXPECT_TRUE(page.ok()) << page.status().ToString();
    if (!page.ok()) break;
    EXPECT_LE(static_cast<int>(page->items.size()), limit);
    for (const Job& job : page->items) ids.push_back(job.id);
    cursor = page->next_cursor;
    if (cursor.empty()) break;
  }
  return ids;
}

NewJob KeyedJob(int n, const std::string& type, std::vector<std::string> keys) {
  NewJob job = MakeJob(JobId(n), type);
  job.search_keys = std::move(keys);
  return job;
}

TEST_P(QueueContractTest, FinishedJobsAreKeptForRetentionThenPruned) {
  config_.retention = milliseconds(3600'000);
  config_.retention_payload = milliseconds(600'000);
  auto queue = Open();
  ASSERT_NE(queue, nullptr);
  ASSERT_EQ(EnqueueSync(*queue, KeyedJob(1, "t", {"user:U1"})).outcome, EnqueueOutcome::kAccepted);
  ASSERT_EQ(EnqueueSync(*queue, KeyedJob(2, "t", {"user:U1"})).outcome, EnqueueOutcome::kAccepted);
  std::vector<Job> claimed = ClaimOk(*queue, "t", 1);
  ASSERT_EQ(claimed.size(), 1u);
  ASSERT_TRUE(FinishSync(*queue, Finished(claimed[0], Disposition::kSucceeded)).ok());
  ASSERT_TRUE(queue->Cancel(JobId(2)).ok());
  TypeDepth depth = DepthOf(*queue, "t");
  EXPECT_EQ(depth.succeeded, 1);
  EXPECT_EQ(depth.cancelled, 1);
  EXPECT_EQ(depth.ready, 0);
  EXPECT_EQ(ListAll(*queue, ByKey("user:U1")), (std::vector<std::string>{JobId(2), JobId(1)}));

  // Past retention_payload: metadata, attempts and keys stay; the payload goes.
  clock_.Advance(milliseconds(600'001));
  ASSERT_TRUE(WaitUntil([&] {
    Result<Job> job = queue->GetJob(JobId(1));
    return job.ok() && job->payload_pruned;
  }));
  Result<Job> job = queue->GetJob(JobId(1));
  ASSERT_TRUE(job.ok());
  EXPECT_EQ(job->payload_json, "null");
  EXPECT_EQ(job->headers_json, "{}");
  EXPECT_EQ(job->state, JobState::kSucceeded);
  EXPECT_EQ(job->attempts.size(), 1u);
  EXPECT_EQ(queue->Rerun(JobId(1)).status().code(), StatusCode::kFailedPrecondition);

  // Past retention: gone, with their keys and counts.
  clock_.Advance(milliseconds(3000'000));
  ASSERT_TRUE(WaitUntil([&] {
    return queue->GetJob(JobId(1)).status().code() == StatusCode::kNotFound &&
           queue->GetJob(JobId(2)).status().code() == StatusCode::kNotFound;
  }));
  EXPECT_TRUE(ListAll(*queue, ByKey("user:U1")).empty());
  depth = DepthOf(*queue, "t");
  EXPECT_EQ(depth.succeeded, 0);
  EXPECT_EQ(depth.cancelled, 0);
}

TEST_P(QueueContractTest, HistoryCountsKeptJobsByFinishAndDeathTime) {
  config_.retention = milliseconds(24 * 3600'000);
  auto queue = Open();
  ASSERT_NE(queue, nullptr);
  const int64_t t0 = clock_.NowMs();
  for (int i = 1; i <= 4; ++i) ASSERT_EQ(EnqueueSync(*queue, MakeJob(JobId(i), "t")).outcome,
                                         EnqueueOutcome::kAccepted);
  // One claimed at a time, so no lease runs out while the clock moves.
  std::vector<Job> claimed;
  for (Disposition outcome : {Disposition::kSucceeded, Disposition::kDead, Disposition::kSucceeded}) {
    if (!claimed.empty()) clock_.Advance(milliseconds(60'000));
    std::vector<Job> one = ClaimOk(*queue, "t", 1);
    ASSERT_EQ(one.size(), 1u);
    ASSERT_TRUE(FinishSync(*queue, Finished(one[0], outcome)).ok());
    claimed.push_back(one[0]);
  }
  ASSERT_TRUE(queue->Cancel(JobId(4)).ok());

  auto counts = [&] {
    Result<std::vector<HistoryBucket>> history = queue->History(t0, 60'000, 4);
    EXPECT_TRUE(history.ok()) << history.status().ToString();
    std::vector<std::pair<int64_t, int64_t>> out;
    if (!history.ok()) return out;
    for (size_t i = 0; i < history->size(); ++i) {
      EXPECT_EQ((*history)[i].start_ms, t0 + static_cast<int64_t>(i) * 60'000);
      out.emplace_back((*history)[i].finished, (*history)[i].dead);
    }
    return out;
  };
  using Counts = std::vector<std::pair<int64_t, int64_t>>;
  EXPECT_EQ(counts(), (Counts{{1, 0}, {0, 1}, {2, 0}, {0, 0}}));
  // A replayed dead job is finished (replayed) when it was replayed; its rerun is new.
  ASSERT_TRUE(queue->Rerun(claimed[1].id).ok());
  EXPECT_EQ(counts(), (Counts{{1, 0}, {0, 0}, {3, 0}, {0, 0}}));
  // The spans are half-open: the first millisecond of the next one is not counted.
  Result<std::vector<HistoryBucket>> first = queue->History(t0 - 1, 1, 1);
  ASSERT_TRUE(first.ok());
  EXPECT_EQ((*first)[0].finished, 0);
  for (auto [bucket_ms, buckets] : {std::pair<int64_t, int>{0, 1}, {60'000, 0},
                                    {60'000, kMaxHistoryBuckets + 1}}) {
    EXPECT_EQ(queue->History(t0, bucket_ms, buckets).status().code(),
              StatusCode::kInvalidArgument);
  }
}

TEST_P(QueueContractTest, RetentionZeroDeletesASucceededJobAtOnce) {
  config_.retention = milliseconds(0);
  auto queue = Open();
  ASSERT_NE(queue, nullptr);
  ASSERT_EQ(EnqueueSync(*queue, KeyedJob(1, "t", {"user:U1"})).outcome, EnqueueOutcome::kAccepted);
  std::vector<Job> claimed = ClaimOk(*queue, "t", 1);
  ASSERT_EQ(claimed.size(), 1u);
  ASSERT_TRUE(FinishSync(*queue, Finished(claimed[0], Disposition::kSucceeded)).ok());
  EXPECT_EQ(queue->GetJob(JobId(1)).status().code(), StatusCode::kNotFound);
  EXPECT_TRUE(ListAll(*queue, ByKey("user:U1")).empty());
  EXPECT_TRUE(ListAll(*queue, JobFilter{}).empty());
  Result<std::vector<TypeDepth>> stats = queue->Stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_TRUE(stats->empty());
}

TEST_P(QueueContractTest, RedactedValuesAreNeverStored) {
  config_.redact = {"/user/email", "/items", "/missing"};
  auto queue = Open();
  ASSERT_NE(queue, nullptr);
  NewJob job = MakeJob(JobId(1), "t");
  job.payload_json = R"({"user":{"id":"U1","email":"a@example.com"},"items":[1,{"x":2}],"n":3})";
  ASSERT_EQ(EnqueueSync(*queue, job).outcome, EnqueueOutcome::kAccepted);
  std::vector<Job> claimed = ClaimOk(*queue, "t", 1);
  ASSERT_EQ(claimed.size(), 1u);
  EXPECT_EQ(claimed[0].payload_json,
            R"({"user":{"id":"U1","email":"[redacted]"},"items":"[redacted]","n":3})");
  // A success's actions are redacted the same way, and linked to it.
  JobFinish finish = Finished(claimed[0], Disposition::kSucceeded);
  NewJob action = MakeJob(JobId(2), "action.slack");
  action.payload_json = R"({"user":{"email":"b@example.com"}})";
  finish.follow_ups.push_back(action);
  ASSERT_TRUE(FinishSync(*queue, std::move(finish)).ok());
  Result<Job> stored = queue->GetJob(JobId(2));
  ASSERT_TRUE(stored.ok()) << stored.status().ToString();
  EXPECT_EQ(stored->payload_json, R"({"user":{"email":"[redacted]"}})");
  EXPECT_EQ(stored->parent_id, JobId(1));
  EXPECT_EQ(ListAll(*queue, ByKey("parent:" + JobId(1))), std::vector<std::string>{JobId(2)});
}

TEST_P(QueueContractTest, ListJobsFiltersByKeyStateTypeSourceTextAndTime) {
  auto queue = Open();
  ASSERT_NE(queue, nullptr);
  const int64_t start = clock_.NowMs();
  for (int i = 1; i <= 12; ++i) {
    NewJob job = KeyedJob(i, i % 2 == 0 ? "even" : "odd",
                          {i % 3 == 0 ? "slack.user:U3" : "slack.user:U" + std::to_string(i),
                           "slack.team:T1"});
    job.source = i <= 6 ? "slack" : "github";
    job.payload_json = R"({"text":"hello )" + std::to_string(i) + R"("})";
    if (i == 12) job.run_at_ms = start + 60'000;  // delayed
    ASSERT_EQ(EnqueueSync(*queue, job).outcome, EnqueueOutcome::kAccepted);
    clock_.Advance(milliseconds(1000));
  }
  // Newest first; the key index, then every other filter on top of it.
  EXPECT_EQ(ListAll(*queue, ByKey("slack.user:U3")),
            (std::vector<std::string>{JobId(12), JobId(9), JobId(6), JobId(3)}));
  EXPECT_EQ(ListAll(*queue, ByKey("slack.team:T1")).size(), 12u);
  EXPECT_TRUE(ListAll(*queue, ByKey("slack.user:nobody")).empty());
  JobFilter filter = ByKey("slack.user:U3");
  filter.type = "odd";
  EXPECT_EQ(ListAll(*queue, filter), (std::vector<std::string>{JobId(9), JobId(3)}));
  filter.source = "github";
  EXPECT_EQ(ListAll(*queue, filter), (std::vector<std::string>{JobId(9)}));

  JobFilter text;
  text.q = "hello 1";  // 1, 10, 11, 12
  EXPECT_EQ(ListAll(*queue, text),
            (std::vector<std::string>{JobId(12), JobId(11), JobId(10), JobId(1)}));
  JobFilter window;
  window.from_ms = start + 2000;  // jobs 3..
  window.to_ms = start + 5000;    // ..5
  EXPECT_EQ(ListAll(*queue, window),
            (std::vector<std::string>{JobId(5), JobId(4), JobId(3)}));
  JobFilter trace;
  trace.key = "trace:0af7651916cd43dd8448eb211c80319c";  // MakeJob's traceparent
  EXPECT_EQ(ListAll(*queue, trace).size(), 12u);

  // States: two claimed, one dead, one delayed.
  std::vector<Job> claimed = ClaimOk(*queue, "odd", 2);
  ASSERT_EQ(claimed.size(), 2u);
  ASSERT_TRUE(FinishSync(*queue, Finished(claimed[0], Disposition::kDead, 0, "boom")).ok());
  JobFilter state;
  state.state = "in_flight";
  EXPECT_EQ(ListAll(*queue, state), std::vector<std::string>{claimed[1].id});
  state.state = "dead";
  EXPECT_EQ(ListAll(*queue, state), std::vector<std::string>{claimed[0].id});
  state.state = "delayed";
  EXPECT_EQ(ListAll(*queue, state), std::vector<std::string>{JobId(12)});
  state.state = "ready";
  EXPECT_EQ(ListAll(*queue, state).size(), 10u);
  state.state = "bogus";
  EXPECT_EQ(queue->ListJobs(state, 10, "").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(queue->ListJobs(JobFilter{}, 10, "not-a-cursor").status().code(),
            StatusCode::kInvalidArgument);

  // The first page says about how many the index holds; items carry their keys.
  Result<JobPage> first = queue->ListJobs(ByKey("slack.user:U3"), 2, "");
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(first->total_estimate, 4);
  ASSERT_EQ(first->items.size(), 2u);
  const std::vector<std::string>& keys = first->items[0].search_keys;
  EXPECT_NE(std::find(keys.begin(), keys.end(), "slack.user:U3"), keys.end());
  EXPECT_FALSE(first->next_cursor.empty());
}

// A filter that matches nothing among many jobs answers in bounded pages, each with a
// cursor to go on from, and ends.
TEST_P(QueueContractTest, ListJobsScanIsBoundedPerPage) {
  config_.timeout = kBurstTimeout;
  auto queue = Open();
  ASSERT_NE(queue, nullptr);
  auto tally = std::make_shared<EnqueueTally>();
  constexpr int kJobs = 12'000;
  for (int i = 0; i < kJobs; ++i) queue->Enqueue(MakeJob(JobId(i), "t"), tally->Callback());
  ASSERT_TRUE(tally->WaitAnswered(kJobs));
  JobFilter filter;
  filter.q = "not in any payload";
  int pages = 0;
  std::string cursor;
  do {
    Result<JobPage> page = queue->ListJobs(filter, 50, cursor);
    ASSERT_TRUE(page.ok()) << page.status().ToString();
    EXPECT_TRUE(page->items.empty());
    cursor = page->next_cursor;
    ++pages;
  } while (!cursor.empty() && pages < 100);
  EXPECT_TRUE(cursor.empty());
  EXPECT_GE(pages, 1);
  // Redis examines at most 5000 rows per call, SQLite 20000.
  EXPECT_LE(pages, 4);
  if (GetParam() == "redis") {
    EXPECT_GE(pages, 3);
  }
}

TEST_P(QueueContractTest, PausedTypeIsNotClaimedWhileIngressAccepts) {
  auto queue = Open();
  auto other = Open();  // another process on the same store sees the pause
  ASSERT_NE(queue, nullptr);
  ASSERT_NE(other, nullptr);
  ASSERT_TRUE(queue->SetPaused("a", true).ok());
  ASSERT_TRUE(queue->SetPaused("a", true).ok());  // idempotent
  ASSERT_EQ(EnqueueSync(*queue, MakeJob(JobId(1), "a")).outcome, EnqueueOutcome::kAccepted);
  ASSERT_EQ(EnqueueSync(*queue, MakeJob(JobId(2), "b")).outcome, EnqueueOutcome::kAccepted);
  EXPECT_TRUE(ClaimOk(*other, "a", 10).empty());
  EXPECT_EQ(ClaimOk(*other, "b", 10).size(), 1u);
  TypeDepth depth = DepthOf(*other, "a");
  EXPECT_TRUE(depth.paused);
  EXPECT_EQ(depth.ready, 1);
  EXPECT_EQ(depth.oldest_ready_at_ms, clock_.NowMs());
  EXPECT_FALSE(DepthOf(*other, "b").paused);
  ASSERT_TRUE(other->SetPaused("a", false).ok());
  EXPECT_EQ(ClaimOk(*queue, "a", 10).size(), 1u);
  EXPECT_FALSE(DepthOf(*queue, "a").paused);
  EXPECT_EQ(queue->SetPaused("", true).code(), StatusCode::kInvalidArgument);
}

TEST_P(QueueContractTest, CancelRunNowAndRerun) {
  auto queue = Open();
  ASSERT_NE(queue, nullptr);
  NewJob delayed = MakeJob(JobId(1), "t");
  delayed.run_at_ms = clock_.NowMs() + 3600'000;
  ASSERT_EQ(EnqueueSync(*queue, delayed).outcome, EnqueueOutcome::kAccepted);
  ASSERT_EQ(EnqueueSync(*queue, MakeJob(JobId(2), "t")).outcome, EnqueueOutcome::kAccepted);
  EXPECT_EQ(queue->RunNow("missing").code(), StatusCode::kNotFound);

  // Cancel: only a waiting job; it never runs and is kept as history.
  ASSERT_TRUE(queue->Cancel(JobId(2)).ok());
  EXPECT_EQ(queue->Cancel(JobId(2)).code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(queue->Cancel("missing").code(), StatusCode::kNotFound);
  EXPECT_EQ(queue->GetJob(JobId(2))->state, JobState::kCancelled);
  EXPECT_TRUE(ClaimOk(*queue, "t", 10).empty());  // job 1 is delayed, job 2 cancelled

  // Run now: the delayed job is claimable at once.
  ASSERT_TRUE(queue->RunNow(JobId(1)).ok());
  std::vector<Job> claimed = ClaimOk(*queue, "t", 10);
  ASSERT_EQ(claimed.size(), 1u);
  EXPECT_EQ(claimed[0].id, JobId(1));
  EXPECT_EQ(queue->Cancel(JobId(1)).code(), StatusCode::kFailedPrecondition);  // running
  EXPECT_EQ(queue->RunNow(JobId(1)).code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(queue->Rerun(JobId(1)).status().code(), StatusCode::kFailedPrecondition);
  ASSERT_TRUE(FinishSync(*queue, Finished(claimed[0], Disposition::kSucceeded)).ok());

  // Rerun of a succeeded and of a cancelled job: new jobs linked to them; the originals
  // stay as they were.
  Result<std::string> again = queue->Rerun(JobId(1));
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_NE(*again, JobId(1));
  EXPECT_EQ(queue->GetJob(JobId(1))->state, JobState::kSucceeded);
  Result<std::string> revived = queue->Rerun(JobId(2));
  ASSERT_TRUE(revived.ok()) << revived.status().ToString();
  Result<Job> job = queue->GetJob(*revived);
  ASSERT_TRUE(job.ok());
  EXPECT_EQ(job->replay_of, JobId(2));
  EXPECT_EQ(job->state, JobState::kReady);
  claimed = ClaimOk(*queue, "t", 10);
  EXPECT_EQ(claimed.size(), 2u);
  for (const Job& c : claimed) EXPECT_EQ(c.attempt, 1);
  // A rerun is not an arrival: Throughput counts the two enqueues only.
  EXPECT_EQ(ThroughputOf(*queue, "t").arrived, 2);
}

TEST_P(QueueContractTest, AuditLogPagesNewestFirst) {
  auto queue = Open();
  ASSERT_NE(queue, nullptr);
  for (int i = 0; i < 5; ++i) {
    AuditEntry entry;
    entry.actor = "ops";
    entry.action = "dead.replay";
    entry.target = "op-" + std::to_string(i);
    entry.count = i * 10;
    entry.detail_json = R"({"filter":{"type":"t"}})";
    ASSERT_TRUE(queue->AppendAudit(entry).ok());
  }
  Result<AuditPage> first = queue->ListAudit(3, "");
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  ASSERT_EQ(first->items.size(), 3u);
  EXPECT_EQ(first->items[0].target, "op-4");
  EXPECT_EQ(first->items[0].count, 40);
  EXPECT_EQ(first->items[0].actor, "ops");
  EXPECT_EQ(first->items[0].action, "dead.replay");
  EXPECT_EQ(first->items[0].detail_json, R"({"filter":{"type":"t"}})");
  EXPECT_EQ(first->items[0].at_ms, clock_.NowMs());
  ASSERT_FALSE(first->next_cursor.empty());
  Result<AuditPage> second = queue->ListAudit(3, first->next_cursor);
  ASSERT_TRUE(second.ok());
  ASSERT_EQ(second->items.size(), 2u);
  EXPECT_EQ(second->items[1].target, "op-0");
  EXPECT_TRUE(second->next_cursor.empty());
}

// Dead jobs of `type` numbered first.., each dead-lettered with error(i).
void KillJobs(Queue& queue, const std::string& type, int first, int count,
              const std::function<std::string(int)>& error) {
  for (int i = first; i < first + count; ++i) {
    ASSERT_EQ(EnqueueSync(queue, MakeJob(JobId(i), type)).outcome, EnqueueOutcome::kAccepted);
    std::vector<Job> claimed = ClaimOk(queue, type, 1);
    ASSERT_EQ(claimed.size(), 1u);
    ASSERT_TRUE(FinishSync(queue, Finished(claimed[0], Disposition::kDead, 0, error(i))).ok());
  }
}

std::string SlowOrAuthError(int i) {
  return i % 2 == 0 ? "HTTP 503 from api.example.com after " + std::to_string(1000 + i) + " ms"
                    : "invalid token 'tok-" + std::to_string(i) + "'";
}

TEST_P(QueueContractTest, BulkReplayByFilterCountsFirstThenReplaysTheSameJobs) {
  auto queue = Open();
  ASSERT_NE(queue, nullptr);
  KillJobs(*queue, "a", 0, 30, SlowOrAuthError);
  KillJobs(*queue, "b", 100, 6, SlowOrAuthError);
  ASSERT_FALSE(HasFatalFailure());
  const std::string slow = ErrorFingerprint(SlowOrAuthError(0));
  EXPECT_EQ(slow, ErrorFingerprint(SlowOrAuthError(2)));  // numbers differ, same problem
  EXPECT_NE(slow, ErrorFingerprint(SlowOrAuthError(1)));

  std::vector<DeadGroup> groups;
  int64_t scanned = 0;
  ASSERT_TRUE(GroupDead(*queue, DeadFilter{}, 1000, groups, scanned).ok());
  EXPECT_EQ(scanned, 36);
  ASSERT_EQ(groups.size(), 2u);
  EXPECT_EQ(groups[0].count, 18);
  EXPECT_EQ(groups[0].types["a"], 15);

  BulkRequest request;
  request.filter.jobs.type = "a";
  request.filter.fingerprint = slow;
  request.dry_run = true;
  std::atomic<bool> cancel{false};
  BulkProgress counted;
  ASSERT_TRUE(RunBulk(*queue, request, cancel, nullptr, counted).ok());
  EXPECT_EQ(counted.matched, 15);
  EXPECT_EQ(counted.done, 0);
  EXPECT_EQ(DepthOf(*queue, "a").dead, 30);  // a dry run changes nothing

  request.dry_run = false;
  BulkProgress replayed;
  ASSERT_TRUE(RunBulk(*queue, request, cancel, nullptr, replayed).ok());
  EXPECT_EQ(replayed.done, counted.matched);
  EXPECT_EQ(replayed.failed, 0);
  EXPECT_EQ(DepthOf(*queue, "a").dead, 15);
  EXPECT_EQ(DepthOf(*queue, "a").ready, 15);
  EXPECT_EQ(DepthOf(*queue, "b").dead, 6);
  // Each replay runs again as attempt 1 and is linked to its original.
  std::vector<Job> claimed = ClaimOk(*queue, "a", 100);
  ASSERT_EQ(claimed.size(), 15u);
  for (const Job& job : claimed) {
    EXPECT_EQ(job.attempt, 1);
    Result<Job> again = queue->GetJob(job.id);
    ASSERT_TRUE(again.ok());
    Result<Job> original = queue->GetJob(again->replay_of);
    ASSERT_TRUE(original.ok()) << again->replay_of;
    EXPECT_EQ(original->state, JobState::kReplayed);
    EXPECT_EQ(original->replayed_as, job.id);
    EXPECT_EQ(ErrorFingerprint(original->last_error), slow);
  }
  // Delete by filter: the other group of "a".
  request.action = BulkAction::kDelete;
  request.filter.fingerprint = "";
  BulkProgress deleted;
  ASSERT_TRUE(RunBulk(*queue, request, cancel, nullptr, deleted).ok());
  EXPECT_EQ(deleted.done, 15);
  EXPECT_EQ(DepthOf(*queue, "a").dead, 0);
}

TEST_P(QueueContractTest, BulkOperationHoldsItsRateCapStopsWhenCancelledAndIsAudited) {
  auto queue = Open();
  ASSERT_NE(queue, nullptr);
  KillJobs(*queue, "a", 0, 40, SlowOrAuthError);
  ASSERT_FALSE(HasFatalFailure());
  Operations operations(*queue, clock_);

  // The cap: 10 jobs at 25/s take at least 0.4 s however fast the store is; all 40 would
  // take 1.6 s, time enough to cancel on a loaded machine (ASan, parallel tests).
  BulkRequest capped;
  capped.filter.jobs.type = "a";
  capped.rate_per_s = 25;
  capped.actor = "ops-token";
  const auto start = std::chrono::steady_clock::now();
  Result<OperationView> op = operations.Start(capped);
  ASSERT_TRUE(op.ok()) << op.status().ToString();
  EXPECT_EQ(op->state, "running");
  ASSERT_TRUE(WaitUntil([&] { return operations.Get(op->id)->progress.done >= 10; },
                        milliseconds(20'000)));
  EXPECT_GE(std::chrono::steady_clock::now() - start, milliseconds(390));
  // Cancel: it stops between two jobs; what it did stays done.
  ASSERT_TRUE(operations.Cancel(op->id));
  ASSERT_TRUE(WaitUntil([&] { return operations.Get(op->id)->state != "running"; }));
  OperationView ended = *operations.Get(op->id);
  EXPECT_EQ(ended.state, "cancelled");
  EXPECT_GE(ended.progress.done, 10);
  EXPECT_LT(ended.progress.done, 40);
  EXPECT_EQ(DepthOf(*queue, "a").dead, 40 - ended.progress.done);
  EXPECT_FALSE(operations.Cancel("op_missing"));

  Result<AuditPage> audit = queue->ListAudit(10, "");
  ASSERT_TRUE(audit.ok());
  ASSERT_EQ(audit->items.size(), 1u);
  EXPECT_EQ(audit->items[0].action, "dead.replay");
  EXPECT_EQ(audit->items[0].actor, "ops-token");
  EXPECT_EQ(audit->items[0].target, op->id);
  EXPECT_EQ(audit->items[0].count, ended.progress.done);
  EXPECT_NE(audit->items[0].detail_json.find("\"type\":\"a\""), std::string::npos);
  EXPECT_NE(audit->items[0].detail_json.find("\"cancelled\""), std::string::npos);
  ASSERT_EQ(operations.List().size(), 1u);
}

INSTANTIATE_TEST_SUITE_P(Backends, QueueContractTest, ::testing::Values("sqlite", "redis"),
                         [](const ::testing::TestParamInfo<std::string>& backend) {
                           return backend.param;
                         });

TEST(OpenQueueTest, RejectsUnknownBackend) {
  QueueConfig config;
  config.backend = "mongo";
  FakeClock clock;
  Result<std::unique_ptr<Queue>> queue = OpenQueue(config, clock);
  ASSERT_FALSE(queue.ok());
  EXPECT_EQ(queue.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(queue.status().message().find("mongo"), std::string::npos);
}

}  // namespace
}  // namespace firebreak
