// The embedded queue backend: one SQLite file in WAL mode (DESIGN §4).
//
// Every write (Enqueue, Claim, Finish, the lease sweep, dedupe pruning and the admin
// writes) goes to one writer thread, which takes all pending operations (up to
// Options::max_batch), runs them in one BEGIN IMMEDIATE transaction, commits, and only
// then runs their callbacks: many requests share one commit (and, with durability
// "fsync", one fsync). If the transaction fails, every operation of the batch reports
// the failure and nothing of it is stored.
//
// Several processes (e.g. `ingest` + `worker`, or the CLI while a server runs) may open
// the same file: SQLite's locks serialize their write transactions and the busy timeout
// makes them wait for each other instead of failing.
//
// The synchronous read methods use a second connection guarded by a mutex; the
// synchronous admin writes (Replay, Purge, ...) go through the writer thread and wait.
//
// Health (queue/store_health.h): every batch reports whether it committed a change or
// failed; when nothing proved the file writable for a while, or while it is failing,
// the writer thread commits a one-row probe (table `probe`) with the durability's sync.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include "common/clock.h"
#include "common/sqlite_db.h"
#include "common/status.h"
#include "config/config.h"
#include "queue/pending_ops.h"
#include "queue/queue.h"
#include "queue/store_health.h"

namespace firebreak {

struct SqliteQueueOptions {
  // Most operations one transaction takes; bounds a batch's latency and memory.
  int max_batch = 512;
  // How often in-flight leases are checked for expiry and expired dedupe keys pruned.
  // A batch also sweeps first when a lease it knows of has expired, or when the injected
  // clock has moved this far since the last sweep.
  std::chrono::milliseconds sweep_interval{250};
  // How often the ready+delayed depth is recounted, since other processes change it.
  // The count scans the ready index (milliseconds with ~10^5 jobs), so not too often.
  std::chrono::milliseconds depth_refresh_interval{5000};
  // How long a write waits for another process's transaction before failing.
  std::chrono::milliseconds busy_timeout{5000};
};

// The schema version this build writes (PRAGMA user_version).
// 1: jobs, dedupe keys, attempts. 2: + per-minute throughput counts. 3: + the health probe row.
// 4: + finished jobs kept as history, search keys, pauses, the audit log.
inline constexpr int kSqliteQueueSchemaVersion = 6;

class SqliteQueue final : public Queue {
 public:
  // Opens or creates the database at config.path (creating parent directories), sets
  // WAL mode, synchronous = FULL (durability fsync) or NORMAL (process) and the writer's
  // page cache to config.cache_size, creates or
  // checks the schema and starts the writer thread. Errors: kUnavailable naming the path
  // (cannot create/open/lock, schema newer than this build); kInvalidArgument for an
  // empty path.
  static Result<std::unique_ptr<SqliteQueue>> Open(const QueueConfig& config, Clock& clock,
                                                   const SqliteQueueOptions& options = {});

  ~SqliteQueue() override;

  // After Close(), the asynchronous methods call `done` at once on the caller's thread
  // with kUnavailable (no queue thread is left to run it on). An Enqueue the writer has
  // not taken within config.timeout is answered kUnavailable unstored (PendingOps).
  void Enqueue(NewJob job, EnqueueCallback done) override;
  void Claim(std::vector<ClaimSlots> slots, ClaimCallback done) override;
  void Finish(JobFinish finish, StatusCallback done) override;
  void SetWakeup(std::function<void()> wakeup) override;

  Result<std::vector<TypeDepth>> Stats() override;
  Result<std::vector<TypeThroughput>> Throughput(int64_t window_ms) override;
  QueueHealth Health() override;
  Result<Job> GetJob(const std::string& id) override;
  // `limit` is capped at 1000; the cursor is opaque ("<dead_at>.<seq>").
  Result<DeadListPage> ListDead(const std::string& type, int limit,
                                const std::string& cursor) override;
  Status Replay(const std::string& id) override;
  Result<int64_t> ReplayAll(const std::string& type,
                            const std::function<void(int64_t)>& progress) override;
  Status Purge(const std::string& id) override;
  Result<int64_t> PurgeAll(const std::string& type) override;
  // The cursor is opaque (the last row's seq).
  Result<JobPage> ListJobs(const JobFilter& filter, int limit, const std::string& cursor) override;
  Result<std::string> Rerun(const std::string& id) override;
  Status RunNow(const std::string& id) override;
  Status Cancel(const std::string& id) override;
  Status SetPaused(const std::string& type, bool paused) override;
  Status AppendAudit(const AuditEntry& entry) override;
  Result<AuditPage> ListAudit(int limit, const std::string& cursor) override;
  Result<std::vector<HistoryBucket>> History(int64_t from_ms, int64_t bucket_ms,
                                             int buckets) override;
  void Close() override;

  // Transactions committed by the writer thread so far (each holds one or more
  // operations); with CommittedOperations, shows how well commits are shared.
  int64_t CommittedBatches() const { return committed_batches_.load(); }
  int64_t CommittedOperations() const { return committed_operations_.load(); }

 private:
  struct EnqueueOp {
    NewJob job;
    EnqueueCallback done;
    EnqueueResult result;
  };
  struct ClaimOp {
    std::vector<ClaimSlots> slots;
    ClaimCallback done;
    Status status;
    std::vector<Job> jobs;
  };
  struct FinishOp {
    JobFinish finish;
    StatusCallback done;
    Status status;
  };
  // A synchronous admin write: `apply` runs inside the batch transaction and returns a
  // non-ok status only for a database failure (which fails the whole batch); its own
  // result travels through its captures. `done` gets the batch's commit status.
  struct AdminOp {
    std::function<Status(int64_t now_ms)> apply;
    std::function<void(Status)> done;
  };
  using Op = std::variant<EnqueueOp, ClaimOp, FinishOp, AdminOp>;

  // Statements of the writer connection, prepared once at open.
  struct WriterStatements {
    sqlite::Statement begin;
    sqlite::Statement commit;
    sqlite::Statement rollback;
    sqlite::Statement find_dedupe_key;
    sqlite::Statement upsert_dedupe_key;
    sqlite::Statement insert_job;
    sqlite::Statement claim;
    sqlite::Statement delete_job;
    sqlite::Statement succeed_job;
    sqlite::Statement delete_attempts;
    sqlite::Statement insert_key;
    sqlite::Statement delete_key;
    sqlite::Statement delete_job_by_seq;
    sqlite::Statement select_job;
    sqlite::Statement insert_attempt;
    sqlite::Statement retry_job;
    sqlite::Statement release_job;
    sqlite::Statement kill_job;
    sqlite::Statement expired_leases;
    sqlite::Statement prune_dedupe_keys;
    sqlite::Statement count_depth;
    sqlite::Statement next_lease_expiry;
    sqlite::Statement mark_replayed;
    sqlite::Statement dead_chunk;
    sqlite::Statement run_now;
    sqlite::Statement cancel_job;
    sqlite::Statement pause;
    sqlite::Statement resume;
    sqlite::Statement insert_audit;
    sqlite::Statement expired_finished;
    sqlite::Statement prune_payloads;
    sqlite::Statement add_finished_count;
    sqlite::Statement purge_job;
    sqlite::Statement purge_chunk;
    sqlite::Statement add_throughput;
    sqlite::Statement prune_throughput;
    sqlite::Statement probe;
    sqlite::Statement count_key_line;
    sqlite::Statement find_debounce;
    sqlite::Statement upsert_debounce;
    sqlite::Statement prune_debounce;
    sqlite::Statement promote_key_line;
    sqlite::Statement throttled_candidates;
    sqlite::Statement claim_one;
    sqlite::Statement defer_job;
    sqlite::Statement nth_recent_start;
    sqlite::Statement record_start;
    sqlite::Statement prune_starts;
    sqlite::Statement count_in_flight;
  };
  struct ReadStatements {
    sqlite::Statement begin;
    sqlite::Statement commit;
    sqlite::Statement get_job;
    sqlite::Statement get_attempts;
    sqlite::Statement list_dead;
    sqlite::Statement depth_ready;
    sqlite::Statement depth_in_flight;
    sqlite::Statement depth_dead;
    sqlite::Statement finished_counts;
    sqlite::Statement paused;
    sqlite::Statement scan_key;
    sqlite::Statement scan_state;
    sqlite::Statement scan_all;
    sqlite::Statement get_job_by_seq;
    sqlite::Statement count_key;
    sqlite::Statement count_state;
    sqlite::Statement count_all;
    sqlite::Statement list_audit;
    sqlite::Statement history_finished;
    sqlite::Statement history_dead;
    sqlite::Statement throughput;
    sqlite::Statement throughput_since;
  };

  SqliteQueue(const QueueConfig& config, Clock& clock, const SqliteQueueOptions& options);
  Status Init();

  // Answers an operation that will not run (closed, or past its deadline).
  static void FailOp(Op& op, const Status& status);
  // Runs `apply` on the writer thread inside a batch and waits for the commit.
  Status RunAdminWrite(std::function<Status(int64_t now_ms)> apply);

  void WriterLoop();
  void RunBatch(std::vector<Op>& batch);
  // One committed row update: proof the file takes writes (StoreHealth).
  void RunProbe();
  // BEGIN IMMEDIATE, `body`, COMMIT with synchronous FULL or NORMAL; on any failure a
  // ROLLBACK, and the status names the file.
  Status Transaction(bool full_sync, const std::function<Status()>& body);
  // Whether a batch's commit must survive power loss (synchronous=FULL).
  bool NeedsFullSync(const std::vector<Op>& batch) const;
  Status SetSyncMode(bool full);
  bool SweepDue(int64_t now_ms) const;
  Status RefreshDepth();
  Status Sweep(int64_t now_ms);
  Status ApplyEnqueue(EnqueueOp& op, int64_t now_ms);
  // The dedupe check and insert of ApplyEnqueue; `check_depth` applies max_depth.
  Status InsertJob(NewJob& job, int64_t now_ms, bool check_depth, EnqueueResult& result);
  Status ApplyClaim(ClaimOp& op, int64_t now_ms);
  // ApplyClaim for a slot with a throttle: job by job, each keyed one only while its key
  // has room in the window; the rest are deferred to when it has. Appends (seq, job).
  Status ApplyThrottledClaim(const ClaimSlots& slot, int64_t now_ms,
                             std::vector<std::pair<int64_t, Job>>& claimed);
  Status ApplyFinish(FinishOp& op, int64_t now_ms);
  Status InsertAttempt(const std::string& job_id, const AttemptRecord& record);
  // Cancels job `id` if it is waiting (ready, delayed or parked), with `reason` as its
  // last error unless empty; false when it is not waiting (or missing).
  Result<bool> CancelWaiting(const std::string& id, int64_t now_ms, const std::string& reason);
  // Unparked jobs in the line of `type` and `key`, counted up to `limit`.
  Result<int64_t> KeyLineLength(const std::string& type, const std::string& key, int64_t limit);
  // A job of `key` (parked or not) left its key's line: the next parked one moves up.
  Status LeaveKeyLine(const std::string& type, const std::string& key, bool parked,
                      int64_t now_ms);
  // Deletes a job row by seq with its attempts and search keys.
  Status DeleteJobRow(int64_t seq, const std::string& id, const std::string& search_keys);
  // Deletes finished jobs past queue.retention and payloads past retention_payload, a
  // chunk at a time; sets more_to_sweep_ when a chunk was full.
  Status PruneFinished(int64_t now_ms);
  // On the writer thread, inside a batch: Rerun's change. `dead_only` is Replay's.
  Status ApplyRerun(const std::string& id, bool dead_only, int64_t now_ms, Status& outcome,
                    std::string& new_id);
  // Adds `n` to the count of `type`'s finished jobs in `state` (written with the batch).
  void CountState(const std::string& type, int64_t state, int64_t n);
  Status WriteFinishedCounts();
  // Counts an attempt's end for Throughput (kRelease is not one).
  void CountFinished(const std::string& type, const JobFinish& finish);
  // One upsert per type into this minute's throughput row; just before the commit.
  Status WriteThroughput(int64_t now_ms);
  void Deliver(Op& op, const Status& batch_status);
  // Reports a finished round to health_: `status` of its commit, whether it changed the
  // file, and whether it synced as this queue's durability needs.
  void ReportRound(const Status& status, int64_t changes_before, bool durable);

  Status ReadAttempts(const std::string& job_id, std::vector<AttemptRecord>& out);
  Status ClosedStatus() const;

  const std::string path_;
  const int64_t max_depth_;
  const int64_t dedupe_ttl_ms_;
  const int64_t retention_ms_;
  const int64_t retention_payload_ms_;  // 0 or >= retention_ms_: payloads live as long
  const std::vector<std::string> redact_;
  const Durability durability_;
  const std::chrono::milliseconds timeout_;
  const uint64_t cache_size_;
  const SqliteQueueOptions options_;
  Clock& clock_;

  // Owned by the writer thread once it runs (Init uses them before it starts).
  std::unique_ptr<sqlite::Connection> write_db_;
  WriterStatements write_;
  int64_t depth_ = 0;  // ready+delayed jobs, all types
  bool wake_after_commit_ = false;
  bool sync_full_ = true;  // the connection's current synchronous setting is FULL
  bool more_to_sweep_ = false;
  // The earliest lease this process knows of (its own claims, and the file's at the last
  // sweep): reaching it makes a sweep due at once. Claims by other processes are found
  // by the periodic sweep.
  int64_t next_lease_expiry_ms_ = std::numeric_limits<int64_t>::max();
  int64_t last_sweep_clock_ms_ = 0;
  // This batch's throughput counts per type, written by WriteThroughput.
  struct ThroughputDelta {
    int64_t arrived = 0;
    int64_t finished = 0;
    int64_t busy_ms = 0;
  };
  std::map<std::string, ThroughputDelta, std::less<>> batch_throughput_;
  std::map<std::pair<std::string, int64_t>, int64_t> batch_finished_;  // (type, state) -> n
  int64_t throughput_pruned_minute_ = 0;  // the minute of the last prune
  std::chrono::steady_clock::time_point last_sweep_steady_;
  std::chrono::steady_clock::time_point last_depth_refresh_;

  std::mutex read_mu_;
  std::unique_ptr<sqlite::Connection> read_db_;  // guarded by read_mu_
  ReadStatements read_;                          // guarded by read_mu_

  PendingOps<Op> pending_;
  StoreHealth health_;
  WakeupHook wakeup_;

  std::mutex close_mu_;  // serializes Close()
  std::thread writer_;
  std::atomic<bool> closed_{false};
  std::atomic<int64_t> committed_batches_{0};
  std::atomic<int64_t> committed_operations_{0};
};

// The factory OpenQueue uses for backend "sqlite".
Result<std::unique_ptr<Queue>> OpenSqliteQueue(const QueueConfig& config, Clock& clock,
                                               const SqliteQueueOptions& options = {});

}  // namespace firebreak
