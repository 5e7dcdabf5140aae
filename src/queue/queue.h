// The durable job queue. Backends: sqlite/ (embedded default) and redis/ (many hosts).
//
// Semantics (DESIGN §4): at-least-once delivery; ingress stores a job and its dedupe
// keys atomically; a claimed job holds a lease and is delivered again when the lease
// expires; retries are scheduled by the caller (the worker owns the backoff policy);
// dead jobs keep every attempt's record; replay resets the attempt count.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/status.h"
#include "queue/job.h"
#include "queue/store_health.h"

namespace firebreak {

struct QueueConfig;

enum class EnqueueOutcome {
  kAccepted,    // stored durably (per queue.durability)
  kDuplicate,   // a dedupe key was seen within dedupe_ttl; nothing stored
  kOverloaded,  // ready+delayed depth is at max_depth; nothing stored
};

struct EnqueueResult {
  Status status;  // not ok: nothing stored (e.g. store unreachable, disk full)
  EnqueueOutcome outcome = EnqueueOutcome::kAccepted;
  std::string job_id;  // the new job's id, or for a duplicate the id of the job that holds the key
};

// How many jobs of one type the caller can take now, and the lease each one gets.
struct ClaimSlots {
  std::string type;
  int limit = 0;
  int64_t lease_ms = 0;
  // How much earlier each priority level counts as runnable (job.h kMaxPriority).
  int64_t priority_step_ms = 60'000;
  // Throttle per ordering key (0 = none): at most throttle_limit claims of one key's jobs
  // in any throttle_period_ms, counted across every process on the store. A job over it
  // is not claimed; it waits again, runnable when its key may start one more.
  int throttle_limit = 0;
  int64_t throttle_period_ms = 0;
  // Cap on this type's jobs in flight over every process (0 = none): the claim takes at
  // most global_limit minus those in flight now (expired leases count until swept).
  int global_limit = 0;
};

enum class Disposition {
  kSucceeded,  // done: the job leaves the queue
  kRetry,      // back to ready, runnable at run_at_ms
  kDead,       // to the dead-letter queue
  kRelease,    // back to ready at run_at_ms without spending the attempt (the worker
               // stopped before the attempt could finish); the record is still kept
};

// A worker's verdict on one claimed attempt.
struct JobFinish {
  std::string job_id;
  int attempt = 0;  // the claimed attempt; a finish for an attempt the job no longer holds is stale
  Disposition disposition = Disposition::kSucceeded;
  int64_t run_at_ms = 0;  // kRetry and kRelease
  // Kept as the attempt's history for kRetry, kDead (and kRelease, see keep_record);
  // for kSucceeded only record.duration_ms is used: it is the handler time Throughput
  // counts for every disposition but kRelease.
  AttemptRecord record;
  // kRelease only: false leaves no attempt record (a deferral that sent nothing: an
  // action waiting out an open breaker must not grow its history every open_for).
  bool keep_record = true;
  // kSucceeded only: jobs stored in the same commit as the outcome (the outbox: a
  // handler's actions). Either the job is done and all of these are stored, or neither
  // happened. A follow-up whose dedupe key is live (or whose id exists) is skipped, so a
  // handler that ran twice cannot create its actions twice. max_depth does not apply:
  // they belong to work already accepted.
  std::vector<NewJob> follow_ups;
};

struct TypeDepth {
  std::string type;
  int64_t ready = 0;    // runnable now
  int64_t delayed = 0;  // waiting for run_at
  int64_t in_flight = 0;
  int64_t dead = 0;
  int64_t succeeded = 0;  // finished states kept by queue.retention
  int64_t cancelled = 0;
  int64_t replayed = 0;
  bool paused = false;  // SetPaused: no worker claims this type
  // Enqueue time of the oldest ready job (runnable now), 0 when there is none.
  int64_t oldest_ready_at_ms = 0;
};

// Which jobs ListJobs returns; every set field must match. Newest first.
struct JobFilter {
  // "" (any), a JobStateName word, or "delayed" (ready with run_at in the future).
  std::string state;
  std::string type;
  std::string source;
  // One search key, exactly as stored ("slack.user:U024BE7LH", "trace:<32 hex>",
  // "parent:<job id>"): the indexed way to find one user's or one trace's jobs.
  std::string key;
  std::string q;         // substring of the payload (bounded scan; see ListJobs)
  int64_t from_ms = 0;   // enqueued_at >= from_ms (0: no bound)
  int64_t to_ms = 0;     // enqueued_at < to_ms (0: no bound)
};

// One page of ListJobs. A page may hold fewer than `limit` items (even none) and still
// have a next_cursor: the scan behind it is bounded (kListScanBudget rows), so a
// filter that matches rarely answers in bounded time and the caller pages on.
struct JobPage {
  std::vector<Job> items;  // without attempts; payload_json and headers_json included
  std::string next_cursor;  // "" when nothing older is left
  // Rows the filter's index holds (before q/from/to/source are applied): an upper
  // bound, for "about N" in a UI.
  int64_t total_estimate = 0;
};

// The most rows one ListJobs call examines.
inline constexpr int kListScanBudget = 20'000;

// One audit log entry: who changed what (DESIGN §7).
struct AuditEntry {
  int64_t at_ms = 0;
  std::string actor;   // the token's name, or "cli:<user>"
  std::string action;  // e.g. "dead.replay", "job.cancel", "queue.pause"
  std::string target;  // a job id, a job type, or an operation id
  std::string detail_json = "{}";  // the filter, counts, outcome: a JSON object
  int64_t count = 0;   // how many jobs it changed
  int64_t seq = 0;     // assigned by the store; the cursor
};

struct AuditPage {
  std::vector<AuditEntry> items;  // newest first
  std::string next_cursor;
};

// Kept jobs per span of time (Queue::History: the console's last-24-hours view).
struct HistoryBucket {
  int64_t start_ms = 0;
  // Jobs that finished in the span (succeeded, cancelled, replayed) and are still kept
  // (queue.retention).
  int64_t finished = 0;
  // Jobs that died in the span and are dead now (a replayed one counts as finished when
  // it was replayed).
  int64_t dead = 0;
};
inline constexpr int kMaxHistoryBuckets = 1000;

// What one job type's work looked like over a recent window (Queue::Throughput). The
// backends count it in the store itself, in per-minute buckets kept for 2 hours, so
// every process sharing the store (ingest, workers, `firebreak queue stats`) reads the
// same numbers.
struct TypeThroughput {
  std::string type;
  // The span the counts cover, ending now: the window asked for, rounded to whole
  // minutes (at most a minute shorter, never shorter than the current minute so far),
  // or less when the store began counting within it (a fresh store: from its first
  // counted event). At least 1000.
  int64_t window_ms = 0;
  // Jobs stored: accepted enqueues and follow-up jobs stored by a success (not
  // duplicates, refusals for max_depth, or replays from the dead-letter queue).
  int64_t arrived = 0;
  // Attempts that ended with an outcome (kSucceeded, kRetry, kDead); not releases, and
  // not attempts whose lease expired (their worker died: no handler time is known).
  int64_t finished = 0;
  // Handler time of those attempts: the sum of their record.duration_ms.
  int64_t busy_ms = 0;
};

// The longest window Throughput reads; longer ones are cut to it.
inline constexpr int64_t kThroughputMaxWindowMs = 60 * 60 * 1000;

struct DeadListPage {
  std::vector<Job> items;   // with attempts
  std::string next_cursor;  // "" when there is no further page
};

using EnqueueCallback = std::function<void(EnqueueResult)>;
using ClaimCallback = std::function<void(Result<std::vector<Job>>)>;
using StatusCallback = std::function<void(Status)>;

// Thread-safe: every method may be called from any thread.
//
// The asynchronous methods (Enqueue, Claim, Finish) never block the caller; their
// callback runs exactly once, on a thread owned by the queue, after the change is
// committed (durably, per queue.durability) or has failed. Callbacks must be quick
// and must not call back into the queue synchronously: post to your own executor.
// One exception to "a queue thread" (queue/pending_ops.h): an Enqueue that cannot be
// taken — the queue is closed, or the store has not answered for queue.timeout — is
// answered kUnavailable, unstored, on the thread that found it so (the caller's own, or
// the one of a later Enqueue). An Enqueue is never stored after queue.timeout has
// passed without the writer taking it.
//
// The synchronous methods are for tools and the admin side; they may block on I/O.
class Queue {
 public:
  virtual ~Queue() = default;

  // Stores `job` unless one of its dedupe keys is live or the queue is full.
  virtual void Enqueue(NewJob job, EnqueueCallback done) = 0;

  // Claims up to slots[i].limit runnable jobs of each type, oldest run_at first (less
  // priority x slots[i].priority_step_ms), moving them in flight with attempt+1 and a
  // lease of slots[i].lease_ms. A job with an ordering_key is runnable only while fewer
  // than its key_limit older jobs of the same type and key are waiting or in flight; one
  // that becomes runnable when another of its key leaves counts as runnable from then
  // (so keys take turns). With a throttle, a keyed job whose key started throttle_limit
  // jobs in the last throttle_period_ms gets run_at = when the oldest of those starts
  // leaves the window, and is not claimed now.
  virtual void Claim(std::vector<ClaimSlots> slots, ClaimCallback done) = 0;

  // Records the outcome of a claimed attempt. If the job no longer holds that attempt
  // (its lease expired and it was reclaimed), nothing changes and the status is
  // kFailedPrecondition.
  virtual void Finish(JobFinish finish, StatusCallback done) = 0;

  // Called (on a queue thread) after a commit made jobs runnable, so an in-process
  // worker can claim without waiting for its poll. Set once, before traffic.
  virtual void SetWakeup(std::function<void()> wakeup) = 0;

  // Depth per job type and state, for every type that has jobs.
  virtual Result<std::vector<TypeDepth>> Stats() = 0;
  // Arrivals, finished attempts and handler time per job type over the last
  // `window_ms` (cut to kThroughputMaxWindowMs; <= 0 reads the current minute), for
  // every type with any of them, sorted by type. The counts are updated in the same
  // commit (sqlite) or script (redis) as the change they count. kUnavailable when the
  // store cannot be read.
  virtual Result<std::vector<TypeThroughput>> Throughput(int64_t window_ms) = 0;
  // Whether a job enqueued now would be stored (/readyz, firebreak_queue_writable): what
  // the backend's own writer thread last saw (store_health.h), never a call to the store.
  // Never blocks on I/O.
  virtual QueueHealth Health() = 0;

  virtual Result<Job> GetJob(const std::string& id) = 0;
  // Jobs matching `filter`, newest enqueue first, at most `limit` (capped at 1000) per
  // page; `cursor` from the previous page. kInvalidArgument for a bad cursor or state.
  virtual Result<JobPage> ListJobs(const JobFilter& filter, int limit,
                                   const std::string& cursor) = 0;

  // Runs a dead or finished job again as a new job (new id, attempt 0, same type,
  // payload, headers and trace; replay_of = `id`); a dead one becomes kReplayed with
  // replayed_as = the new id. Returns the new id. kNotFound if there is no such job,
  // kFailedPrecondition if it is ready or in flight, or was replayed already.
  virtual Result<std::string> Rerun(const std::string& id) = 0;
  // A delayed ready job (a retry waiting out its backoff, or a delayed job) becomes
  // runnable now. kFailedPrecondition if it is not ready.
  virtual Status RunNow(const std::string& id) = 0;
  // A ready job (delayed or not) becomes kCancelled and never runs. kFailedPrecondition
  // if it is in flight (its handler is running), dead or finished; kNotFound if missing.
  virtual Status Cancel(const std::string& id) = 0;

  // Paused types are not claimed (ingress keeps accepting; retries and delays keep
  // their times). Shared by every process on the store. Idempotent.
  virtual Status SetPaused(const std::string& type, bool paused) = 0;

  virtual Status AppendAudit(const AuditEntry& entry) = 0;
  virtual Result<AuditPage> ListAudit(int limit, const std::string& cursor) = 0;
  // `buckets` (1..kMaxHistoryBuckets) spans of `bucket_ms` from `from_ms`, oldest first.
  // It counts index entries (finish and death times): O(log n) per bucket on Redis, all
  // the entries in the range on SQLite (~0.2 s per million kept jobs), so callers that
  // ask often should cache it.
  virtual Result<std::vector<HistoryBucket>> History(int64_t from_ms, int64_t bucket_ms,
                                                     int buckets) = 0;
  // Dead jobs, newest first; `type` "" means all types; `cursor` from a previous page.
  virtual Result<DeadListPage> ListDead(const std::string& type, int limit,
                                        const std::string& cursor) = 0;
  // Rerun of a dead job (kNotFound if it is not dead): the dead job becomes kReplayed
  // and keeps its attempts; the new one runs as attempt 1.
  virtual Status Replay(const std::string& id) = 0;
  // Replays every dead job of `type` ("" = all), oldest first, in batches;
  // `progress(done_so_far)` is called after each batch. Returns how many were replayed.
  virtual Result<int64_t> ReplayAll(const std::string& type,
                                    const std::function<void(int64_t)>& progress) = 0;
  // Deletes a dead job for good. kNotFound if it is not dead.
  virtual Status Purge(const std::string& id) = 0;
  virtual Result<int64_t> PurgeAll(const std::string& type) = 0;

  // Why the store's own settings cannot give queue.durability (e.g. Redis without
  // appendfsync always for "fsync"), or "" when they can. Operators see it as a warning
  // log and the firebreak_queue_durability_degraded gauge.
  virtual std::string DurabilityShortfall() { return ""; }

  // Stops background threads after committing what was already submitted; callbacks
  // of submitted operations still run. Idempotent; the destructor calls it.
  virtual void Close() = 0;
};

// Opens the backend named by config.backend. Errors: kInvalidArgument for an unknown
// backend, kUnavailable when the store cannot be opened.
Result<std::unique_ptr<Queue>> OpenQueue(const QueueConfig& config, Clock& clock);

// Where the configured queue lives, for logs: the sqlite path or the Redis host:port/db
// (never a password).
std::string DescribeQueueLocation(const QueueConfig& config);

}  // namespace firebreak
