// What only the sqlite backend has: its options (writer batching, sweep timer, busy
// timeout), shared commits, the file (paths, schema version, pruning, crash safety) and
// its throughput. The Queue contract itself is tested for every backend in
// queue_contract_test.cc.
#include "queue_test_util.h"
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
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "config/config.h"
#include "queue/queue.h"

namespace firebreak {
namespace {

using std::chrono::milliseconds;

using queue_test::JobId;
using queue_test::kBurstTimeout;
using queue_test::MakeJob;
using queue_test::TempDir;

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

JobFinish Succeeded(const Job& job) {
  JobFinish finish;
  finish.job_id = job.id;
  finish.attempt = job.attempt;
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

// The writer wakes the worker before it runs the batch's callbacks, so a worker claiming
// through the same thread is already queued behind them.
TEST_F(SqliteQueueTest, WakeupRunsBeforeTheEnqueueCallback) {
  auto queue = Open();
  ASSERT_NE(queue, nullptr);
  std::atomic<int> wakeups{0};
  queue->SetWakeup([&] { wakeups.fetch_add(1); });
  ASSERT_EQ(EnqueueSync(*queue, MakeJob(JobId(1))).outcome, EnqueueOutcome::kAccepted);
  EXPECT_EQ(wakeups.load(), 1);
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

TEST_F(SqliteQueueTest, ConcurrentEnqueueSharesCommits) {
  config_.durability = Durability::kFsync;
  config_.timeout = kBurstTimeout;
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

// Kills `count` jobs of `type` by letting their leases expire with max_attempts = 1.
void MakeDeadJobs(Queue& queue, FakeClock& clock, const std::string& type, int first, int count) {
  const int64_t dead_before = DepthOf(queue, type).dead;
  for (int i = 0; i < count; ++i) {
    NewJob job = MakeJob(JobId(first + i), type);
    job.max_attempts = 1;
    queue.Enqueue(std::move(job), [](EnqueueResult r) { EXPECT_TRUE(r.status.ok()); });
  }
  // One writer thread runs operations in order, so the claim sees every enqueue.
  ASSERT_EQ(ClaimOk(queue, type, count, 1000).size(), static_cast<size_t>(count));
  clock.Advance(milliseconds(1001));
  for (int tries = 0; tries < 50 && DepthOf(queue, type).dead < dead_before + count; ++tries) {
    RunWriterBatch(queue);
  }
  ASSERT_EQ(DepthOf(queue, type).dead, dead_before + count);
}

// Bulk replay and purge work in chunks of 500 rows per transaction, reporting each.
TEST_F(SqliteQueueTest, ReplayAllReportsProgressPerChunk) {
  auto queue = Open();
  ASSERT_NE(queue, nullptr);
  MakeDeadJobs(*queue, clock_, "a", 0, 1200);
  std::vector<int64_t> progress;
  Result<int64_t> replayed = queue->ReplayAll("a", [&](int64_t n) { progress.push_back(n); });
  ASSERT_TRUE(replayed.ok()) << replayed.status().ToString();
  EXPECT_EQ(*replayed, 1200);
  EXPECT_EQ(progress, (std::vector<int64_t>{500, 1000, 1200}));
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
  FakeClock clock;
  Result<std::unique_ptr<Queue>> opened = OpenQueue(config, clock);
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  EXPECT_TRUE((*opened)->Health().ready);
  EXPECT_TRUE(std::filesystem::exists(config_.path));  // parent directories were created
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

// Runs one SQL query on the file through a connection of its own; the first column of
// the first row as an integer (-1 when there is no row).
int64_t QueryInt(const std::string& path, const char* sql) {
  sqlite3* db = nullptr;
  EXPECT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  sqlite3_stmt* stmt = nullptr;
  EXPECT_EQ(sqlite3_prepare_v2(db, sql, -1, &stmt, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
  int64_t n = sqlite3_step(stmt) == SQLITE_ROW ? sqlite3_column_int64(stmt, 0) : -1;
  sqlite3_finalize(stmt);
  sqlite3_close(db);
  return n;
}

// A file written by a build of schema version 1 (no throughput table, no probe row) is
// migrated in place at open: its jobs stay, counting starts, and the probe works.
TEST_F(SqliteQueueTest, MigratesAVersionOneFile) {
  // A file as version 1 wrote it (its schema, copied here: released migrations never
  // change), with one waiting job.
  std::filesystem::create_directories(std::filesystem::path(config_.path).parent_path());
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(config_.path.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, R"sql(
CREATE TABLE jobs (seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, type TEXT NOT NULL,
  source TEXT NOT NULL, dedupe_key TEXT NOT NULL, traceparent TEXT NOT NULL,
  ordering_key TEXT NOT NULL, state INTEGER NOT NULL, attempt INTEGER NOT NULL,
  max_attempts INTEGER NOT NULL, enqueued_at INTEGER NOT NULL, run_at INTEGER NOT NULL,
  claimed_at INTEGER NOT NULL, lease_until INTEGER NOT NULL, dead_at INTEGER NOT NULL,
  payload TEXT NOT NULL, headers TEXT NOT NULL);
CREATE INDEX jobs_ready ON jobs (type, run_at) WHERE state = 0;
CREATE INDEX jobs_in_flight ON jobs (lease_until, type) WHERE state = 1;
CREATE INDEX jobs_dead ON jobs (dead_at) WHERE state = 2;
CREATE INDEX jobs_ordering ON jobs (type, ordering_key, state, seq) WHERE ordering_key != '';
CREATE INDEX jobs_dead_by_type ON jobs (type, dead_at) WHERE state = 2;
CREATE TABLE dedupe_keys (key TEXT PRIMARY KEY, job_id TEXT NOT NULL,
  expires_at INTEGER NOT NULL) WITHOUT ROWID;
CREATE INDEX dedupe_keys_expiry ON dedupe_keys (expires_at);
CREATE TABLE attempts (id INTEGER PRIMARY KEY, job_id TEXT NOT NULL, attempt INTEGER NOT NULL,
  started_at INTEGER NOT NULL, duration_ms INTEGER NOT NULL, outcome TEXT NOT NULL,
  error TEXT NOT NULL);
CREATE INDEX attempts_by_job ON attempts (job_id);
INSERT INTO jobs VALUES (1, 'job-0000001', 'test.event', 'hmac', '', '', '', 0, 0, 3, 1, 1, 0,
  0, 0, '{}', '{}');
INSERT INTO jobs VALUES (2, 'job-0000010', 'test.event', 'hmac', '', '', 'K', 0, 0, 3, 1, 1, 0,
  0, 0, '{}', '{}');
INSERT INTO jobs VALUES (3, 'job-0000011', 'test.event', 'hmac', '', '', 'K', 0, 0, 3, 1, 1, 0,
  0, 0, '{}', '{}');
PRAGMA journal_mode = WAL;
PRAGMA user_version = 1;
)sql",
                         nullptr, nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(db);

  auto queue = Open();
  ASSERT_NE(queue, nullptr);
  EXPECT_EQ(QueryInt(config_.path, "PRAGMA user_version"), kSqliteQueueSchemaVersion);
  EXPECT_EQ(kSqliteQueueSchemaVersion, 6);
  EXPECT_GE(QueryInt(config_.path, "SELECT COUNT(*) FROM probe"), 0);  // the tables exist
  EXPECT_GE(QueryInt(config_.path, "SELECT COUNT(*) FROM job_keys"), 0);
  EXPECT_GE(QueryInt(config_.path, "SELECT COUNT(*) FROM key_starts"), 0);
  EXPECT_EQ(DepthOf(*queue, "test.event").ready, 3);
  // The second job of key K waited behind the first under version 1's ordering rule; the
  // migration parks it, so it still runs only after the first has finished.
  EXPECT_EQ(QueryInt(config_.path, "SELECT parked FROM jobs WHERE seq = 3"), 1);
  std::vector<Job> keyed = ClaimOk(*queue, "test.event", 10);
  ASSERT_EQ(keyed.size(), 2u);
  EXPECT_EQ(keyed[1].id, JobId(10));
  EXPECT_TRUE(ClaimOk(*queue, "test.event", 10).empty());
  ASSERT_TRUE(FinishSync(*queue, Succeeded(keyed[1])).ok());
  std::vector<Job> next = ClaimOk(*queue, "test.event", 10);
  ASSERT_EQ(next.size(), 1u);
  EXPECT_EQ(next[0].id, JobId(11));
  Result<Job> old = queue->GetJob(JobId(1));
  ASSERT_TRUE(old.ok()) << old.status().ToString();
  EXPECT_TRUE(old->search_keys.empty());
  EXPECT_EQ(old->finished_at_ms, 0);
  ASSERT_EQ(EnqueueSync(*queue, MakeJob(JobId(2))).outcome, EnqueueOutcome::kAccepted);
  Result<std::vector<TypeThroughput>> counts = queue->Throughput(60'000);
  ASSERT_TRUE(counts.ok()) << counts.status().ToString();
  ASSERT_EQ(counts->size(), 1u);
  EXPECT_EQ((*counts)[0].arrived, 1);
}

// One row per minute and type however many jobs a batch holds; rows past the 2 h
// retention are pruned.
TEST_F(SqliteQueueTest, ThroughputRowsPerMinuteArePrunedAfterRetention) {
  auto queue = Open();
  ASSERT_NE(queue, nullptr);
  auto tally = std::make_shared<std::atomic<int>>(0);
  for (int i = 0; i < 200; ++i) {
    queue->Enqueue(MakeJob(JobId(i), i % 2 == 0 ? "a" : "b"),
                   [tally](EnqueueResult) { tally->fetch_add(1); });
  }
  ASSERT_EQ(EnqueueSync(*queue, MakeJob(JobId(1000), "a")).outcome, EnqueueOutcome::kAccepted);
  EXPECT_EQ(tally->load(), 200);
  EXPECT_EQ(QueryInt(config_.path, "SELECT COUNT(*) FROM throughput"), 2);
  EXPECT_EQ(QueryInt(config_.path, "SELECT SUM(arrived) FROM throughput"), 201);

  clock_.Advance(milliseconds(2 * 60 * 60'000 + 60'000));
  ASSERT_EQ(EnqueueSync(*queue, MakeJob(JobId(2000), "a")).outcome, EnqueueOutcome::kAccepted);
  RunWriterBatch(*queue);
  EXPECT_EQ(QueryInt(config_.path, "SELECT COUNT(*) FROM throughput"), 1);
  EXPECT_EQ(QueryInt(config_.path, "SELECT SUM(arrived) FROM throughput"), 1);
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
  config_.timeout = kBurstTimeout;
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
    std::atomic<int> answered{0};
    for (int i = 0; i < kJobs; ++i) {
      (*queue)->Enqueue(MakeJob(JobId(i), "t", {"k" + std::to_string(i)}), [&](EnqueueResult r) {
        // Fewer than kKillAfter accepted (refused past the timeout) must not leave the
        // child waiting forever: the last answer kills it too, and the parent says so.
        const bool last = answered.fetch_add(1) + 1 == kJobs;
        if (r.status.ok() && r.outcome == EnqueueOutcome::kAccepted) {
          std::string line = r.job_id + "\n";
          if (write(fds[1], line.data(), line.size()) != static_cast<ssize_t>(line.size()))
            _exit(4);
          if (reported.fetch_add(1) + 1 == kKillAfter) raise(SIGKILL);
        }
        if (last) raise(SIGKILL);
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
// The 20k are submitted at once, so the last wait for the whole burst: queue.timeout is
// raised past it (an enqueue the writer has not taken in time is refused, as a webhook's
// would be; under ASan the burst takes longer than the 2 s default).
TEST_F(SqliteQueueTest, ThroughputReport) {
  config_.timeout = std::chrono::milliseconds(60'000);
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
