// The sqlite queue backend against the Queue contract (queue.h, DESIGN §4).
#include "queue/sqlite/sqlite_queue.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <future>
#include <iostream>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "config/config.h"
#include "queue/queue.h"

namespace firebreak {
namespace {

using std::chrono::milliseconds;

class TempDir {
 public:
  TempDir() {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "sqlite_queue_test.XXXXXX").string();
    char* made = mkdtemp(pattern.data());
    if (made == nullptr) std::abort();
    path_ = made;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

std::string JobId(int n) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "job-%07d", n);
  return buf;
}

NewJob MakeJob(const std::string& id, const std::string& type = "test.event",
               std::vector<std::string> keys = {}) {
  NewJob job;
  job.id = id;
  job.type = type;
  job.source = "hmac";
  job.dedupe_keys = std::move(keys);
  job.payload_json = R"({"n":")" + id + R"("})";
  job.headers_json = R"({"x-test":"1"})";
  job.traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
  job.max_attempts = 3;
  return job;
}

EnqueueResult EnqueueSync(Queue& queue, NewJob job) {
  std::promise<EnqueueResult> done;
  auto future = done.get_future();
  queue.Enqueue(std::move(job), [&](EnqueueResult r) { done.set_value(std::move(r)); });
  return future.get();
}

Result<std::vector<Job>> ClaimSync(Queue& queue, std::vector<ClaimSlots> slots) {
  std::promise<Result<std::vector<Job>>> done;
  auto future = done.get_future();
  queue.Claim(std::move(slots), [&](Result<std::vector<Job>> r) { done.set_value(std::move(r)); });
  return future.get();
}

std::vector<Job> ClaimOk(Queue& queue, const std::string& type, int limit,
                         int64_t lease_ms = 30'000) {
  Result<std::vector<Job>> jobs = ClaimSync(queue, {{type, limit, lease_ms}});
  EXPECT_TRUE(jobs.ok()) << jobs.status().ToString();
  return jobs.ok() ? *jobs : std::vector<Job>{};
}

Status FinishSync(Queue& queue, JobFinish finish) {
  std::promise<Status> done;
  auto future = done.get_future();
  queue.Finish(std::move(finish), [&](Status s) { done.set_value(std::move(s)); });
  return future.get();
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

// Runs an empty batch through the writer, which sweeps leases when the clock has moved.
void RunWriterBatch(Queue& queue) { ASSERT_TRUE(ClaimSync(queue, {}).ok()); }

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

class SqliteQueueTest : public ::testing::Test {
 protected:
  SqliteQueueTest() {
    config_.backend = "sqlite";
    config_.path = dir_.path() + "/nested/dir/queue.db";
    config_.durability = Durability::kProcess;
    config_.dedupe_ttl = milliseconds(60'000);
    config_.max_depth = 100'000;
  }

  std::unique_ptr<SqliteQueue> Open(const SqliteQueueOptions& options = {}) {
    Result<std::unique_ptr<SqliteQueue>> queue = SqliteQueue::Open(config_, clock_, options);
    EXPECT_TRUE(queue.ok()) << queue.status().ToString();
    return queue.ok() ? std::move(*queue) : nullptr;
  }

  TempDir dir_;
  QueueConfig config_;
  FakeClock clock_;
};

TEST_F(SqliteQueueTest, EnqueueClaimSucceed) {
  auto queue = Open();
  ASSERT_NE(queue, nullptr);
  EXPECT_TRUE(std::filesystem::exists(config_.path));
  EXPECT_TRUE(queue->Ping().ok());

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
  EXPECT_EQ(queue->GetJob(job.id).status().code(), StatusCode::kNotFound);
  Result<std::vector<TypeDepth>> stats = queue->Stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_TRUE(stats->empty());
  // A second finish of the same attempt is stale.
  EXPECT_EQ(FinishSync(*queue, Finished(got, Disposition::kSucceeded)).code(),
            StatusCode::kFailedPrecondition);
}

TEST_F(SqliteQueueTest, RejectsJobWithoutIdOrType) {
  auto queue = Open();
  ASSERT_NE(queue, nullptr);
  EXPECT_EQ(EnqueueSync(*queue, MakeJob("", "t")).status.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(EnqueueSync(*queue, MakeJob("x", "")).status.code(), StatusCode::kInvalidArgument);
  ASSERT_TRUE(EnqueueSync(*queue, MakeJob("same-id")).status.ok());
  EXPECT_EQ(EnqueueSync(*queue, MakeJob("same-id")).status.code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(DepthOf(*queue, "test.event").ready, 1);
}

TEST_F(SqliteQueueTest, DedupeWithinTtlAndAfter) {
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
  EXPECT_EQ(EnqueueSync(*queue, MakeJob(JobId(3), "t", {"k"})).outcome, EnqueueOutcome::kDuplicate);

  clock_.Advance(milliseconds(1));  // now the key has expired
  EnqueueResult third = EnqueueSync(*queue, MakeJob(JobId(4), "t", {"k"}));
  ASSERT_TRUE(third.status.ok());
  EXPECT_EQ(third.outcome, EnqueueOutcome::kAccepted);
  EXPECT_EQ(third.job_id, JobId(4));

  // Two keys: a duplicate if either is live; otherwise both are stored.
  EnqueueResult either = EnqueueSync(*queue, MakeJob(JobId(5), "t", {"fresh", "k"}));
  EXPECT_EQ(either.outcome, EnqueueOutcome::kDuplicate);
  EXPECT_EQ(either.job_id, JobId(4));
  EXPECT_EQ(EnqueueSync(*queue, MakeJob(JobId(6), "t", {"fresh"})).outcome,
            EnqueueOutcome::kAccepted);  // JobId(5) stored none of its keys
  EXPECT_EQ(EnqueueSync(*queue, MakeJob(JobId(7), "t", {"a", "b"})).outcome,
            EnqueueOutcome::kAccepted);
  EnqueueResult by_second_key = EnqueueSync(*queue, MakeJob(JobId(8), "t", {"b"}));
  EXPECT_EQ(by_second_key.outcome, EnqueueOutcome::kDuplicate);
  EXPECT_EQ(by_second_key.job_id, JobId(7));
  // No keys: never a duplicate.
  EXPECT_EQ(EnqueueSync(*queue, MakeJob(JobId(9), "t")).outcome, EnqueueOutcome::kAccepted);
  EXPECT_EQ(EnqueueSync(*queue, MakeJob(JobId(10), "t")).outcome, EnqueueOutcome::kAccepted);
}

TEST_F(SqliteQueueTest, DedupeInsideOneBatch) {
  auto queue = Open();
  ASSERT_NE(queue, nullptr);
  std::promise<EnqueueResult> a, b;
  queue->Enqueue(MakeJob(JobId(1), "t", {"same"}), [&](EnqueueResult r) { a.set_value(r); });
  queue->Enqueue(MakeJob(JobId(2), "t", {"same"}), [&](EnqueueResult r) { b.set_value(r); });
  EnqueueResult ra = a.get_future().get();
  EnqueueResult rb = b.get_future().get();
  EXPECT_EQ(ra.outcome, EnqueueOutcome::kAccepted);
  EXPECT_EQ(rb.outcome, EnqueueOutcome::kDuplicate);
  EXPECT_EQ(rb.job_id, JobId(1));
}

TEST_F(SqliteQueueTest, MaxDepthOverloads) {
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

  // Delayed jobs count too, and a reopened queue counts what is in the file.
  queue->Close();
  queue.reset();
  queue = Open();
  ASSERT_NE(queue, nullptr);
  EXPECT_EQ(EnqueueSync(*queue, MakeJob(JobId(6), "t")).outcome, EnqueueOutcome::kOverloaded);
}

TEST_F(SqliteQueueTest, OrderingKeyRunsFifoOneInFlightPerKey) {
  auto queue = Open();
  ASSERT_NE(queue, nullptr);
  // a1 a2 a3 share key A, b1 has key B, u1 and u2 have none; enqueued in that order.
  auto enqueue = [&](int n, const std::string& key) {
    NewJob job = MakeJob(JobId(n), "t");
    job.ordering_key = key;
    ASSERT_EQ(EnqueueSync(*queue, job).outcome, EnqueueOutcome::kAccepted);
  };
  enqueue(1, "A");
  enqueue(2, "A");
  enqueue(3, "A");
  enqueue(4, "B");
  enqueue(5, "");
  enqueue(6, "");
  auto ids = [](const std::vector<Job>& jobs) {
    std::vector<std::string> out;
    for (const Job& j : jobs) out.push_back(j.id);
    return out;
  };
  std::vector<Job> first = ClaimOk(*queue, "t", 10);
  EXPECT_EQ(ids(first), (std::vector<std::string>{JobId(1), JobId(4), JobId(5), JobId(6)}));
  // While a1 is in flight nothing else of A runs.
  EXPECT_TRUE(ClaimOk(*queue, "t", 10).empty());
  // a1 fails and is retried later: a2 must still wait behind it (FIFO, not just
  // one-in-flight).
  ASSERT_TRUE(
      FinishSync(*queue, Finished(first[0], Disposition::kRetry, clock_.NowMs() + 1000, "busy"))
          .ok());
  EXPECT_TRUE(ClaimOk(*queue, "t", 10).empty());
  clock_.Advance(milliseconds(1000));
  std::vector<Job> again = ClaimOk(*queue, "t", 10);
  EXPECT_EQ(ids(again), (std::vector<std::string>{JobId(1)}));
  ASSERT_TRUE(FinishSync(*queue, Finished(again[0], Disposition::kSucceeded)).ok());
  std::vector<Job> second = ClaimOk(*queue, "t", 10);
  EXPECT_EQ(ids(second), (std::vector<std::string>{JobId(2)}));
  // A dead job does not block its key.
  ASSERT_TRUE(FinishSync(*queue, Finished(second[0], Disposition::kDead, 0, "bad")).ok());
  EXPECT_EQ(ids(ClaimOk(*queue, "t", 10)), (std::vector<std::string>{JobId(3)}));
}

TEST_F(SqliteQueueTest, ReleaseReturnsTheJobWithoutSpendingTheAttempt) {
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

TEST_F(SqliteQueueTest, DelayedJobWaitsForRunAt) {
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
  clock_.Advance(milliseconds(1));
  EXPECT_EQ(DepthOf(*queue, "test.event").ready, 1);
  std::vector<Job> claimed = ClaimOk(*queue, "test.event", 5);
  ASSERT_EQ(claimed.size(), 1u);
  EXPECT_EQ(claimed[0].run_at_ms, job.run_at_ms);
}

TEST_F(SqliteQueueTest, ClaimHonoursPerTypeLimitsAndOrder) {
  auto queue = Open();
  ASSERT_NE(queue, nullptr);
  const int64_t now = clock_.NowMs();
  const int64_t run_at_a[] = {now - 1, now - 3, now - 2, now - 3};
  for (int i = 0; i < 4; ++i) {
    NewJob job = MakeJob("a" + std::to_string(i), "a");
    job.run_at_ms = run_at_a[i];
    ASSERT_EQ(EnqueueSync(*queue, job).outcome, EnqueueOutcome::kAccepted);
  }
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(EnqueueSync(*queue, MakeJob("b" + std::to_string(i), "b")).outcome,
              EnqueueOutcome::kAccepted);
  }
  Result<std::vector<Job>> claimed =
      ClaimSync(*queue, {{"a", 3, 1000}, {"b", 1, 2000}, {"missing", 5, 1000}});
  ASSERT_TRUE(claimed.ok());
  ASSERT_EQ(claimed->size(), 4u);
  // Oldest run_at first; a tie goes to the earlier enqueue.
  EXPECT_EQ((*claimed)[0].id, "a1");
  EXPECT_EQ((*claimed)[1].id, "a3");
  EXPECT_EQ((*claimed)[2].id, "a2");
  EXPECT_EQ((*claimed)[3].id, "b0");
  EXPECT_EQ((*claimed)[3].lease_until_ms, now + 2000);
  EXPECT_EQ(DepthOf(*queue, "a").ready, 1);
  EXPECT_EQ(DepthOf(*queue, "a").in_flight, 3);
  EXPECT_EQ(DepthOf(*queue, "b").ready, 2);

  EXPECT_EQ(ClaimSync(*queue, {{"a", 1, 0}}).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ClaimSync(*queue, {{"a", -1, 10}}).status().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(ClaimOk(*queue, "a", 0).empty());
}

TEST_F(SqliteQueueTest, RetryRecordsAttemptAndRunsAtRunAt) {
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
  ASSERT_TRUE(job.ok());
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
  claimed = ClaimOk(*queue, "test.event", 1);
  ASSERT_EQ(claimed.size(), 1u);
  EXPECT_EQ(claimed[0].attempt, 2);
  ASSERT_TRUE(
      FinishSync(*queue, Finished(claimed[0], Disposition::kRetry, clock_.NowMs(), "again")).ok());
  job = queue->GetJob(JobId(1));
  ASSERT_TRUE(job.ok());
  ASSERT_EQ(job->attempts.size(), 2u);
  EXPECT_EQ(job->attempts[1].attempt, 2);
  EXPECT_EQ(job->attempts[1].error, "again");

  // Success removes the job and its history.
  claimed = ClaimOk(*queue, "test.event", 1);
  ASSERT_EQ(claimed.size(), 1u);
  ASSERT_TRUE(FinishSync(*queue, Finished(claimed[0], Disposition::kSucceeded)).ok());
  EXPECT_EQ(queue->GetJob(JobId(1)).status().code(), StatusCode::kNotFound);
}

TEST_F(SqliteQueueTest, DeadLetterListReplayPurge) {
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
  Result<DeadListPage> page = queue->ListDead("", 10, "");
  ASSERT_TRUE(page.ok()) << page.status().ToString();
  ASSERT_EQ(page->items.size(), 1u);
  EXPECT_EQ(page->next_cursor, "");
  const Job& dead = page->items[0];
  EXPECT_EQ(dead.id, JobId(1));
  EXPECT_EQ(dead.state, JobState::kDead);
  EXPECT_EQ(dead.attempt, 2);
  ASSERT_EQ(dead.attempts.size(), 2u);
  EXPECT_EQ(dead.attempts[0].error, "e1");
  EXPECT_EQ(dead.attempts[1].error, "e2");
  EXPECT_TRUE(queue->ListDead("other.type", 10, "")->items.empty());
  EXPECT_EQ(queue->ListDead("test.event", 10, "")->items.size(), 1u);

  ASSERT_TRUE(queue->Replay(JobId(1)).ok());
  EXPECT_EQ(queue->Replay(JobId(1)).code(), StatusCode::kNotFound);  // no longer dead
  Result<Job> job = queue->GetJob(JobId(1));
  ASSERT_TRUE(job.ok());
  EXPECT_EQ(job->state, JobState::kReady);
  EXPECT_EQ(job->attempt, 0);
  EXPECT_EQ(job->attempts.size(), 2u);  // history kept
  claimed = ClaimOk(*queue, "test.event", 1);
  ASSERT_EQ(claimed.size(), 1u);
  EXPECT_EQ(claimed[0].attempt, 1);

  EXPECT_EQ(queue->Purge(JobId(1)).code(), StatusCode::kNotFound);  // in flight, not dead
  ASSERT_TRUE(FinishSync(*queue, Finished(claimed[0], Disposition::kDead, 0, "e3")).ok());
  job = queue->GetJob(JobId(1));
  ASSERT_TRUE(job.ok());
  ASSERT_EQ(job->attempts.size(), 3u);
  EXPECT_EQ(job->attempts[2].attempt, 1);
  EXPECT_EQ(job->attempts[2].error, "e3");
  ASSERT_TRUE(queue->Purge(JobId(1)).ok());
  EXPECT_EQ(queue->GetJob(JobId(1)).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(queue->Purge(JobId(1)).code(), StatusCode::kNotFound);
}

// Kills `count` jobs of `type` by letting their leases expire with max_attempts = 1.
void MakeDeadJobs(Queue& queue, FakeClock& clock, const std::string& type, int first, int count) {
  const int64_t dead_before = DepthOf(queue, type).dead;
  for (int i = 0; i < count; ++i) {
    NewJob job = MakeJob(JobId(first + i), type);
    job.max_attempts = 1;
    queue.Enqueue(std::move(job), [](EnqueueResult r) { EXPECT_TRUE(r.status.ok()); });
  }
  ASSERT_EQ(ClaimOk(queue, type, count, 1000).size(), static_cast<size_t>(count));
  clock.Advance(milliseconds(1001));
  for (int tries = 0; tries < 50 && DepthOf(queue, type).dead < dead_before + count; ++tries) {
    RunWriterBatch(queue);
  }
  ASSERT_EQ(DepthOf(queue, type).dead, dead_before + count);
}

TEST_F(SqliteQueueTest, ReplayAllAndPurgeAllInBatches) {
  auto queue = Open();
  ASSERT_NE(queue, nullptr);
  MakeDeadJobs(*queue, clock_, "a", 0, 1200);
  MakeDeadJobs(*queue, clock_, "b", 10'000, 600);

  std::vector<int64_t> progress;
  Result<int64_t> replayed = queue->ReplayAll("a", [&](int64_t n) { progress.push_back(n); });
  ASSERT_TRUE(replayed.ok()) << replayed.status().ToString();
  EXPECT_EQ(*replayed, 1200);
  EXPECT_EQ(progress, (std::vector<int64_t>{500, 1000, 1200}));
  EXPECT_EQ(DepthOf(*queue, "a").ready, 1200);
  EXPECT_EQ(DepthOf(*queue, "a").dead, 0);
  EXPECT_EQ(DepthOf(*queue, "b").dead, 600);

  Result<int64_t> purged = queue->PurgeAll("b");
  ASSERT_TRUE(purged.ok());
  EXPECT_EQ(*purged, 600);
  EXPECT_EQ(DepthOf(*queue, "b").dead, 0);
  EXPECT_EQ(queue->GetJob(JobId(10'000)).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(*queue->PurgeAll(""), 0);
  EXPECT_EQ(*queue->ReplayAll("", nullptr), 0);
  // Replayed jobs kept their history.
  Result<Job> job = queue->GetJob(JobId(5));
  ASSERT_TRUE(job.ok());
  ASSERT_EQ(job->attempts.size(), 1u);
  EXPECT_EQ(job->attempts[0].outcome, "lease_expired");
}

TEST_F(SqliteQueueTest, ListDeadPagesNewestFirst) {
  auto queue = Open();
  ASSERT_NE(queue, nullptr);
  for (int i = 0; i < 5; ++i) {
    MakeDeadJobs(*queue, clock_, i % 2 == 0 ? "even" : "odd", i, 1);
  }
  std::vector<std::string> seen;
  std::string cursor;
  for (int pages = 0; pages < 10; ++pages) {
    Result<DeadListPage> page = queue->ListDead("", 2, cursor);
    ASSERT_TRUE(page.ok());
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
  EXPECT_EQ(queue->ListDead("", 2, "garbage").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(queue->ListDead("", 0, "").status().code(), StatusCode::kInvalidArgument);
}

TEST_F(SqliteQueueTest, LeaseExpiryRedeliversAndStaleFinishFails) {
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
  clock_.Advance(milliseconds(1));
  const int wakeups_before = wakeups.load();
  std::vector<Job> second = ClaimOk(*queue, "test.event", 1, 1000);
  ASSERT_EQ(second.size(), 1u);
  EXPECT_EQ(second[0].id, JobId(1));
  EXPECT_EQ(second[0].attempt, 2);
  EXPECT_GT(wakeups.load(), wakeups_before);

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
  RunWriterBatch(*queue);
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

TEST_F(SqliteQueueTest, IdleWriterSweepsOnItsOwn) {
  SqliteQueueOptions options;
  options.sweep_interval = milliseconds(20);
  auto queue = Open(options);
  ASSERT_NE(queue, nullptr);
  std::promise<void> woke;
  std::atomic<bool> armed{false};
  queue->SetWakeup([&] {
    if (armed.exchange(false)) woke.set_value();
  });
  ASSERT_EQ(EnqueueSync(*queue, MakeJob(JobId(1))).outcome, EnqueueOutcome::kAccepted);
  ASSERT_EQ(ClaimOk(*queue, "test.event", 1, 1000).size(), 1u);
  armed = true;
  clock_.Advance(milliseconds(1000));
  // No call into the queue: the writer's timer finds the expired lease and wakes us.
  ASSERT_EQ(woke.get_future().wait_for(std::chrono::seconds(5)), std::future_status::ready);
  EXPECT_EQ(DepthOf(*queue, "test.event").ready, 1);
}

TEST_F(SqliteQueueTest, WakeupOnlyForRunnableJobs) {
  auto queue = Open();
  ASSERT_NE(queue, nullptr);
  std::atomic<int> wakeups{0};
  queue->SetWakeup([&] { wakeups.fetch_add(1); });
  NewJob delayed = MakeJob(JobId(1));
  delayed.run_at_ms = clock_.NowMs() + 60'000;
  ASSERT_EQ(EnqueueSync(*queue, delayed).outcome, EnqueueOutcome::kAccepted);
  EXPECT_EQ(wakeups.load(), 0);
  ASSERT_EQ(EnqueueSync(*queue, MakeJob(JobId(2))).outcome, EnqueueOutcome::kAccepted);
  EXPECT_EQ(wakeups.load(), 1);  // runs after the commit, before the enqueue returns
}

TEST_F(SqliteQueueTest, ExpiredDedupeKeysArePruned) {
  auto queue = Open();
  ASSERT_NE(queue, nullptr);
  for (int i = 0; i < 10; ++i) {
    ASSERT_EQ(EnqueueSync(*queue, MakeJob(JobId(i), "t", {"key" + std::to_string(i)})).outcome,
              EnqueueOutcome::kAccepted);
  }
  auto count_keys = [&] {
    sqlite3* db = nullptr;
    EXPECT_EQ(sqlite3_open(config_.path.c_str(), &db), SQLITE_OK);
    sqlite3_stmt* stmt = nullptr;
    sqlite3_prepare_v2(db, "SELECT COUNT(*) FROM dedupe_keys", -1, &stmt, nullptr);
    EXPECT_EQ(sqlite3_step(stmt), SQLITE_ROW);
    int64_t n = sqlite3_column_int64(stmt, 0);
    sqlite3_finalize(stmt);
    sqlite3_close(db);
    return n;
  };
  EXPECT_EQ(count_keys(), 10);
  clock_.Advance(milliseconds(60'000));
  RunWriterBatch(*queue);
  EXPECT_EQ(count_keys(), 0);
}

TEST_F(SqliteQueueTest, CloseDrainsSubmittedOperationsAndRejectsLaterOnes) {
  auto queue = Open();
  ASSERT_NE(queue, nullptr);
  std::atomic<int> accepted{0};
  for (int i = 0; i < 2000; ++i) {
    queue->Enqueue(MakeJob(JobId(i)), [&](EnqueueResult r) {
      if (r.status.ok() && r.outcome == EnqueueOutcome::kAccepted) accepted.fetch_add(1);
    });
  }
  queue->Close();
  EXPECT_EQ(accepted.load(), 2000);
  queue->Close();  // idempotent

  EnqueueResult late;
  bool called = false;
  queue->Enqueue(MakeJob(JobId(5000)), [&](EnqueueResult r) {
    late = r;
    called = true;
  });
  EXPECT_TRUE(called);
  EXPECT_EQ(late.status.code(), StatusCode::kUnavailable);
  EXPECT_EQ(queue->Ping().code(), StatusCode::kUnavailable);
  EXPECT_EQ(queue->Stats().status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(queue->Replay("x").code(), StatusCode::kUnavailable);
  queue.reset();

  queue = Open();
  ASSERT_NE(queue, nullptr);
  EXPECT_EQ(DepthOf(*queue, "test.event").ready, 2000);
}

TEST_F(SqliteQueueTest, ConcurrentEnqueueSharesCommits) {
  config_.durability = Durability::kFsync;
  auto queue = Open();
  ASSERT_NE(queue, nullptr);
  constexpr int kThreads = 4;
  constexpr int kPerThread = 2500;
  std::atomic<int> accepted{0};
  std::atomic<int> done{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        int n = t * kPerThread + i;
        queue->Enqueue(MakeJob(JobId(n), "t", {"k" + std::to_string(n)}), [&](EnqueueResult r) {
          if (r.status.ok() && r.outcome == EnqueueOutcome::kAccepted) accepted.fetch_add(1);
          done.fetch_add(1);
        });
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  queue->Close();
  EXPECT_EQ(done.load(), kThreads * kPerThread);
  EXPECT_EQ(accepted.load(), kThreads * kPerThread);
  EXPECT_EQ(queue->CommittedOperations(), kThreads * kPerThread);
  EXPECT_LT(queue->CommittedBatches(), kThreads * kPerThread / 4);  // commits were shared
  queue.reset();
  queue = Open();
  ASSERT_NE(queue, nullptr);
  EXPECT_EQ(DepthOf(*queue, "t").ready, kThreads * kPerThread);
}

TEST_F(SqliteQueueTest, TwoQueuesOnOneFile) {
  auto ingest = Open();
  auto worker = Open();
  ASSERT_NE(ingest, nullptr);
  ASSERT_NE(worker, nullptr);
  ASSERT_EQ(EnqueueSync(*ingest, MakeJob(JobId(0), "t", {"shared"})).outcome,
            EnqueueOutcome::kAccepted);
  EnqueueResult dup = EnqueueSync(*worker, MakeJob(JobId(1), "t", {"shared"}));
  EXPECT_EQ(dup.outcome, EnqueueOutcome::kDuplicate);
  EXPECT_EQ(dup.job_id, JobId(0));

  // Both write at once; the file lock and busy timeout serialize them.
  constexpr int kEach = 1000;
  std::atomic<int> accepted{0};
  auto produce = [&](Queue& queue, int first) {
    for (int i = 0; i < kEach; ++i) {
      queue.Enqueue(MakeJob(JobId(first + i), "t", {"k" + std::to_string(first + i)}),
                    [&](EnqueueResult r) {
                      if (r.status.ok() && r.outcome == EnqueueOutcome::kAccepted) {
                        accepted.fetch_add(1);
                      }
                    });
    }
  };
  std::thread a([&] { produce(*ingest, 100); });
  std::thread b([&] { produce(*worker, 100'000); });
  a.join();
  b.join();
  for (int tries = 0; tries < 500 && accepted.load() < 2 * kEach; ++tries) {
    std::this_thread::sleep_for(milliseconds(10));
  }
  std::vector<Job> claimed;
  for (int tries = 0; tries < 10 && claimed.size() < 2 * kEach + 1; ++tries) {
    std::vector<Job> more = ClaimOk(*worker, "t", 500);
    claimed.insert(claimed.end(), more.begin(), more.end());
  }
  EXPECT_EQ(accepted.load(), 2 * kEach);
  ASSERT_EQ(claimed.size(), 2u * kEach + 1);
  for (const Job& job : claimed) {
    ASSERT_TRUE(FinishSync(*worker, Finished(job, Disposition::kSucceeded)).ok());
  }
  Result<std::vector<TypeDepth>> stats = ingest->Stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_TRUE(stats->empty());
}

TEST_F(SqliteQueueTest, FailedBatchStoresNothingAndReportsUnavailable) {
  SqliteQueueOptions options;
  options.busy_timeout = milliseconds(100);
  auto queue = Open(options);
  ASSERT_NE(queue, nullptr);
  // Another "process" holds the write lock longer than the busy timeout.
  sqlite3* other = nullptr;
  ASSERT_EQ(sqlite3_open(config_.path.c_str(), &other), SQLITE_OK);
  sqlite3_busy_timeout(other, 5000);  // the writer's own start-up sweep may hold the lock briefly
  ASSERT_EQ(sqlite3_exec(other, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr), SQLITE_OK);
  EnqueueResult blocked = EnqueueSync(*queue, MakeJob(JobId(1), "t", {"k"}));
  EXPECT_EQ(blocked.status.code(), StatusCode::kUnavailable);
  EXPECT_NE(blocked.status.message().find(config_.path), std::string::npos)
      << blocked.status.message();
  ASSERT_EQ(sqlite3_exec(other, "ROLLBACK", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(other);

  EXPECT_EQ(queue->GetJob(JobId(1)).status().code(), StatusCode::kNotFound);
  EnqueueResult retried = EnqueueSync(*queue, MakeJob(JobId(1), "t", {"k"}));
  ASSERT_TRUE(retried.status.ok()) << retried.status.ToString();
  EXPECT_EQ(retried.outcome, EnqueueOutcome::kAccepted);  // the key was not stored either
}

TEST_F(SqliteQueueTest, OpenErrors) {
  QueueConfig config = config_;
  config.backend = "redis";
  FakeClock clock;
  Result<std::unique_ptr<Queue>> redis = OpenQueue(config, clock);
  ASSERT_FALSE(redis.ok());
  EXPECT_EQ(redis.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(redis.status().message(), "queue backend \"redis\" is not available in this build yet");
  config.backend = "mongo";
  EXPECT_EQ(OpenQueue(config, clock).status().code(), StatusCode::kInvalidArgument);

  config.backend = "sqlite";
  Result<std::unique_ptr<Queue>> opened = OpenQueue(config, clock);
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  EXPECT_TRUE((*opened)->Ping().ok());
  opened->reset();

  // A regular file where a parent directory should be.
  config.path = config_.path + "/under/a/file.db";
  Result<std::unique_ptr<Queue>> bad = OpenQueue(config, clock);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(bad.status().message().find(config.path), std::string::npos);

  config.path = "";
  EXPECT_EQ(OpenQueue(config, clock).status().code(), StatusCode::kInvalidArgument);
}

TEST_F(SqliteQueueTest, RefusesNewerSchema) {
  { ASSERT_NE(Open(), nullptr); }
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(config_.path.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "PRAGMA user_version = 99", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);
  Result<std::unique_ptr<SqliteQueue>> queue = SqliteQueue::Open(config_, clock_);
  ASSERT_FALSE(queue.ok());
  EXPECT_EQ(queue.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(queue.status().message().find("newer"), std::string::npos);
}

// A child process enqueues and reports each accepted id through a pipe, then is
// SIGKILLed mid-stream without Close(). Every id it reported must be in the file.
class SqliteQueueCrashTest : public SqliteQueueTest,
                             public ::testing::WithParamInterface<Durability> {};

TEST_P(SqliteQueueCrashTest, AcceptedJobsSurviveKill) {
  config_.durability = GetParam();
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  constexpr int kJobs = 4000;
  constexpr int kKillAfter = 1500;
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    close(fds[0]);
    SystemClock clock;
    Result<std::unique_ptr<SqliteQueue>> queue = SqliteQueue::Open(config_, clock);
    if (!queue.ok()) _exit(3);
    std::atomic<int> reported{0};
    for (int i = 0; i < kJobs; ++i) {
      (*queue)->Enqueue(MakeJob(JobId(i), "t", {"k" + std::to_string(i)}), [&](EnqueueResult r) {
        if (!r.status.ok() || r.outcome != EnqueueOutcome::kAccepted) return;
        std::string line = r.job_id + "\n";
        if (write(fds[1], line.data(), line.size()) != static_cast<ssize_t>(line.size())) _exit(4);
        if (reported.fetch_add(1) + 1 == kKillAfter) raise(SIGKILL);
      });
    }
    for (;;) pause();  // the writer thread kills the process
  }
  close(fds[1]);
  std::string received;
  char buf[4096];
  for (;;) {
    ssize_t n = read(fds[0], buf, sizeof buf);
    if (n <= 0) break;
    received.append(buf, static_cast<size_t>(n));
  }
  close(fds[0]);
  int wstatus = 0;
  ASSERT_EQ(waitpid(child, &wstatus, 0), child);
  ASSERT_TRUE(WIFSIGNALED(wstatus)) << "child exited with " << WEXITSTATUS(wstatus);
  EXPECT_EQ(WTERMSIG(wstatus), SIGKILL);

  std::vector<std::string> ids;
  for (size_t start = 0; start < received.size();) {
    size_t end = received.find('\n', start);
    ASSERT_NE(end, std::string::npos) << "torn line";
    ids.push_back(received.substr(start, end - start));
    start = end + 1;
  }
  ASSERT_GE(ids.size(), static_cast<size_t>(kKillAfter));

  auto queue = Open();
  ASSERT_NE(queue, nullptr);
  for (const std::string& id : ids) {
    Result<Job> job = queue->GetJob(id);
    ASSERT_TRUE(job.ok()) << id << ": " << job.status().ToString();
  }
  // And their dedupe keys came with them.
  EXPECT_EQ(EnqueueSync(*queue, MakeJob("again", "t", {"k0"})).outcome, EnqueueOutcome::kDuplicate);
}

INSTANTIATE_TEST_SUITE_P(Durability, SqliteQueueCrashTest,
                         ::testing::Values(Durability::kFsync, Durability::kProcess));

// Not an assertion: a rough number for the report (20k enqueues from one producer).
TEST_F(SqliteQueueTest, ThroughputReport) {
  for (Durability durability : {Durability::kFsync, Durability::kProcess}) {
    TempDir dir;
    config_.path = dir.path() + "/queue.db";
    config_.durability = durability;
    SystemClock clock;
    Result<std::unique_ptr<SqliteQueue>> queue = SqliteQueue::Open(config_, clock);
    ASSERT_TRUE(queue.ok());
    constexpr int kJobs = 20'000;
    std::atomic<int> accepted{0};
    std::promise<void> all_done;
    std::atomic<int> done{0};
    auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < kJobs; ++i) {
      NewJob job = MakeJob(JobId(i), "t", {"k" + std::to_string(i)});
      job.payload_json.append(400, ' ');  // a webhook-sized body
      (*queue)->Enqueue(std::move(job), [&](EnqueueResult r) {
        if (r.status.ok() && r.outcome == EnqueueOutcome::kAccepted) accepted.fetch_add(1);
        if (done.fetch_add(1) + 1 == kJobs) all_done.set_value();
      });
    }
    all_done.get_future().wait();
    double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    EXPECT_EQ(accepted.load(), kJobs);
    std::cout << "[ report   ] synchronous="
              << (durability == Durability::kFsync ? "FULL  " : "NORMAL") << " " << kJobs
              << " enqueues in " << seconds << " s = " << static_cast<int64_t>(kJobs / seconds)
              << "/s, " << (*queue)->CommittedBatches() << " commits\n";
  }
}

}  // namespace
}  // namespace firebreak
