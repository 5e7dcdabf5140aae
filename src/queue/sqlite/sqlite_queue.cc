#include "queue/sqlite/sqlite_queue.h"

#include <algorithm>
#include <charconv>
#include <exception>
#include <filesystem>
#include <future>
#include <limits>
#include <map>
#include <system_error>
#include <utility>

#include "common/crypto.h"
#include "queue/job_record.h"
#include "queue/throughput.h"
#include "telemetry/log.h"

namespace firebreak {

namespace {

// Job states as stored in jobs.state.
constexpr int64_t kStateReady = 0;
constexpr int64_t kStateInFlight = 1;
constexpr int64_t kStateDead = 2;
constexpr int64_t kStateSucceeded = 3;  // 3 and up: finished, pruned after queue.retention
constexpr int64_t kStateCancelled = 4;
constexpr int64_t kStateReplayed = 5;

int64_t StateColumn(JobState state) {
  switch (state) {
    case JobState::kReady:
      return kStateReady;
    case JobState::kInFlight:
      return kStateInFlight;
    case JobState::kDead:
      return kStateDead;
    case JobState::kSucceeded:
      return kStateSucceeded;
    case JobState::kCancelled:
      return kStateCancelled;
    case JobState::kReplayed:
      return kStateReplayed;
  }
  return kStateReady;
}

// Rows handled per statement by the sweep, the pruner and the bulk admin writes, so
// no single transaction holds the write lock for long.
constexpr int64_t kSweepChunk = 500;
constexpr int64_t kPruneChunk = 2000;
constexpr int64_t kAdminChunk = 500;
constexpr int kMaxDeadPage = 1000;

constexpr char kLeaseExpiredOutcome[] = "lease_expired";
constexpr char kLeaseExpiredError[] = "lease expired: worker died or stalled";

// Version 1. Column order puts the large payload/headers last, so reading the small
// columns never walks overflow pages. `seq` (the rowid) breaks run_at ties in
// insertion order. Partial indexes are touched only by rows in their state.
constexpr char kSchemaV1[] = R"sql(
CREATE TABLE IF NOT EXISTS jobs (
  seq INTEGER PRIMARY KEY,
  id TEXT NOT NULL UNIQUE,
  type TEXT NOT NULL,
  source TEXT NOT NULL,
  dedupe_key TEXT NOT NULL,
  traceparent TEXT NOT NULL,
  ordering_key TEXT NOT NULL,
  state INTEGER NOT NULL,
  attempt INTEGER NOT NULL,
  max_attempts INTEGER NOT NULL,
  enqueued_at INTEGER NOT NULL,
  run_at INTEGER NOT NULL,
  claimed_at INTEGER NOT NULL,
  lease_until INTEGER NOT NULL,
  dead_at INTEGER NOT NULL,
  payload TEXT NOT NULL,
  headers TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_ready ON jobs (type, run_at) WHERE state = 0;
CREATE INDEX IF NOT EXISTS jobs_in_flight ON jobs (lease_until, type) WHERE state = 1;
CREATE INDEX IF NOT EXISTS jobs_dead ON jobs (dead_at) WHERE state = 2;
CREATE INDEX IF NOT EXISTS jobs_ordering ON jobs (type, ordering_key, state, seq)
  WHERE ordering_key != '';
CREATE INDEX IF NOT EXISTS jobs_dead_by_type ON jobs (type, dead_at) WHERE state = 2;
CREATE TABLE IF NOT EXISTS dedupe_keys (
  key TEXT PRIMARY KEY,
  job_id TEXT NOT NULL,
  expires_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS dedupe_keys_expiry ON dedupe_keys (expires_at);
CREATE TABLE IF NOT EXISTS attempts (
  id INTEGER PRIMARY KEY,
  job_id TEXT NOT NULL,
  attempt INTEGER NOT NULL,
  started_at INTEGER NOT NULL,
  duration_ms INTEGER NOT NULL,
  outcome TEXT NOT NULL,
  error TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS attempts_by_job ON attempts (job_id);
)sql";

// Version 2: per-minute counts behind Throughput (queue/throughput.h). One row per
// minute and type, upserted once per type per write batch; `first_at` is the first
// event counted in it (a fresh store's rates are divided by the time since then).
constexpr char kSchemaV2[] = R"sql(
CREATE TABLE IF NOT EXISTS throughput (
  minute INTEGER NOT NULL,
  type TEXT NOT NULL,
  arrived INTEGER NOT NULL,
  finished INTEGER NOT NULL,
  busy_ms INTEGER NOT NULL,
  first_at INTEGER NOT NULL,
  PRIMARY KEY (minute, type)
) WITHOUT ROWID;
)sql";

// Version 3: the row the writer thread updates to prove the file takes writes (issue 13:
// /readyz must mean "a webhook sent now would be stored", also while idle).
constexpr char kSchemaV3[] = R"sql(
CREATE TABLE IF NOT EXISTS probe (
  id INTEGER PRIMARY KEY,
  at INTEGER NOT NULL
);
)sql";

// Migrations by the version they bring the file to. Append only: a released migration
// is never edited; a change is a new entry (and kSqliteQueueSchemaVersion + 1).
// Version 4 (issue 15): finished jobs are kept as history (states 3-5 until
// queue.retention), with links (parent, replay), the last error of a dead job, and the
// search keys ingress extracted, indexed in job_keys by (key, seq). New columns come
// after the payload: ALTER TABLE can only append. Also paused job types, per-type
// counts of finished jobs (so Stats does not count a million retained rows), and the
// admin audit log.
constexpr char kSchemaV4[] = R"sql(
ALTER TABLE jobs ADD COLUMN finished_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN last_error TEXT NOT NULL DEFAULT '';
ALTER TABLE jobs ADD COLUMN parent_id TEXT NOT NULL DEFAULT '';
ALTER TABLE jobs ADD COLUMN replay_of TEXT NOT NULL DEFAULT '';
ALTER TABLE jobs ADD COLUMN replayed_as TEXT NOT NULL DEFAULT '';
ALTER TABLE jobs ADD COLUMN search_keys TEXT NOT NULL DEFAULT '';
ALTER TABLE jobs ADD COLUMN payload_pruned INTEGER NOT NULL DEFAULT 0;
CREATE INDEX IF NOT EXISTS jobs_by_state ON jobs (state, seq);
CREATE INDEX IF NOT EXISTS jobs_finished ON jobs (payload_pruned, finished_at) WHERE state >= 3;
CREATE TABLE IF NOT EXISTS job_keys (
  key TEXT NOT NULL,
  seq INTEGER NOT NULL,
  PRIMARY KEY (key, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS finished_counts (
  type TEXT NOT NULL,
  state INTEGER NOT NULL,
  n INTEGER NOT NULL,
  PRIMARY KEY (type, state)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS paused (type TEXT PRIMARY KEY) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS audit (
  seq INTEGER PRIMARY KEY,
  at INTEGER NOT NULL,
  actor TEXT NOT NULL,
  action TEXT NOT NULL,
  target TEXT NOT NULL,
  count INTEGER NOT NULL,
  detail TEXT NOT NULL
);
)sql";

// Version 5 (issue 17): per-key concurrency. A keyed job is `parked` while key_limit
// older jobs of its type and key are runnable or in flight (its key's "line"); leaving
// the line (success, death, cancel) unparks the next. Waiting rows are indexed by
// (type, parked, priority, run_at) instead of (type, run_at): a claim reads only unparked
// ones, so a key with 10,000 waiting jobs costs it nothing, and the oldest of each
// priority level is one seek (ClaimSql). Also each job's priority, and `debounce`: the
// job that last stored each debounce key (type "\n" key), which a later one supersedes
// while it still waits. Rows that
// version 4 held back by the ordering rule (an older or in-flight job of their key) are
// parked here, so the line starts out as the rule had it.
constexpr char kSchemaV5[] = R"sql(
ALTER TABLE jobs ADD COLUMN key_limit INTEGER NOT NULL DEFAULT 1;
ALTER TABLE jobs ADD COLUMN parked INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;
UPDATE jobs SET parked = 1 WHERE state = 0 AND ordering_key != '' AND EXISTS (
  SELECT 1 FROM jobs AS o WHERE o.type = jobs.type AND o.ordering_key = jobs.ordering_key
  AND o.ordering_key != '' AND (o.state = 1 OR (o.state = 0 AND o.seq < jobs.seq)));
DROP INDEX IF EXISTS jobs_ordering;
DROP INDEX IF EXISTS jobs_ready;
CREATE INDEX IF NOT EXISTS jobs_waiting ON jobs (type, parked, priority, run_at)
  WHERE state = 0;
CREATE INDEX IF NOT EXISTS jobs_key_line ON jobs (type, ordering_key, parked, seq)
  WHERE ordering_key != '' AND state IN (0, 1);
CREATE TABLE IF NOT EXISTS debounce (key TEXT PRIMARY KEY, job_id TEXT NOT NULL) WITHOUT ROWID;
)sql";

// Version 6 (issue 17): throttle per key. When each key (type "\n" key) started a job,
// kept until `expires_at` (start + the throttle's period): a key has room while fewer
// than the limit of its starts are newer than now - period. Also the key line's index
// now selects its rows by `finished_at = 0` (not finished, not dead: every way out of
// states 0 and 1 sets it) instead of by state, so a claim (state 0 -> 1) no longer
// re-files the job's entry in it; dead jobs from before version 4 get their finished_at.
constexpr char kSchemaV6[] = R"sql(
UPDATE jobs SET finished_at = dead_at WHERE state = 2 AND finished_at = 0;
DROP INDEX IF EXISTS jobs_key_line;
CREATE INDEX IF NOT EXISTS jobs_key_line ON jobs (type, ordering_key, parked, seq)
  WHERE ordering_key != '' AND finished_at = 0;
CREATE TABLE IF NOT EXISTS key_starts (
  key TEXT NOT NULL,
  at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS key_starts_by_key ON key_starts (key, at);
CREATE INDEX IF NOT EXISTS key_starts_expiry ON key_starts (expires_at);
)sql";

constexpr const char* kMigrations[] = {kSchemaV1, kSchemaV2, kSchemaV3,
                                       kSchemaV4, kSchemaV5, kSchemaV6};
static_assert(std::size(kMigrations) == kSqliteQueueSchemaVersion);

// The job columns every reader selects, in the order RowToJob expects.
#define FIREBREAK_JOB_COLUMNS                                                      \
  "id, type, source, dedupe_key, traceparent, ordering_key, state, attempt, "      \
  "max_attempts, enqueued_at, run_at, lease_until, payload, headers, finished_at, " \
  "last_error, parent_id, replay_of, replayed_as, search_keys, payload_pruned, key_limit, " \
  "priority"
constexpr int kJobColumnCount = 23;

JobState StateFromColumn(int64_t value) {
  switch (value) {
    case kStateInFlight:
      return JobState::kInFlight;
    case kStateDead:
      return JobState::kDead;
    case kStateSucceeded:
      return JobState::kSucceeded;
    case kStateCancelled:
      return JobState::kCancelled;
    case kStateReplayed:
      return JobState::kReplayed;
    default:
      return JobState::kReady;
  }
}

Job RowToJob(const sqlite::Query& row) {
  Job job;
  job.id = row.Text(0);
  job.type = row.Text(1);
  job.source = row.Text(2);
  job.dedupe_key = row.Text(3);
  job.traceparent = row.Text(4);
  job.ordering_key = row.Text(5);
  job.state = StateFromColumn(row.Int(6));
  job.attempt = static_cast<int>(row.Int(7));
  job.max_attempts = static_cast<int>(row.Int(8));
  job.enqueued_at_ms = row.Int(9);
  job.run_at_ms = row.Int(10);
  job.lease_until_ms = row.Int(11);
  job.payload_json = row.Text(12);
  job.headers_json = row.Text(13);
  job.finished_at_ms = row.Int(14);
  job.last_error = row.Text(15);
  job.parent_id = row.Text(16);
  job.replay_of = row.Text(17);
  job.replayed_as = row.Text(18);
  job.search_keys = SplitSearchKeys(row.Text(19));
  job.payload_pruned = row.Int(20) != 0;
  job.key_limit = static_cast<int>(row.Int(21));
  job.priority = static_cast<int>(row.Int(22));
  return job;
}

// The next jobs to claim: the oldest runnable unparked jobs of each priority level (one
// index seek each), of which the `limit` that sort first by run_at - priority x step
// (?5), then seq: their seq, and with `with_key` their ordering_key (which the index does
// not cover). ?1 now, ?3 type, ?4 limit.
std::string NextToClaimSql(bool with_key) {
  const std::string key = with_key ? "ordering_key, " : "";
  std::string levels;
  for (int p = kMaxPriority; p >= 0; --p) {
    const std::string level = std::to_string(p);
    if (!levels.empty()) levels += " UNION ALL ";
    levels += "SELECT seq, " + key + "run_at - " + level + " * ?5 AS k FROM (SELECT seq, " +
              key + "run_at FROM jobs INDEXED BY jobs_waiting WHERE state = 0 AND type = ?3 "
              "AND parked = 0 AND priority = " + level + " AND run_at <= ?1 "
              "ORDER BY run_at, seq LIMIT ?4)";
  }
  return "SELECT seq" + (with_key ? ", ordering_key" : std::string()) + " FROM (" + levels + ") "
         // A paused type is not claimed at all.
         "WHERE NOT EXISTS (SELECT 1 FROM paused WHERE paused.type = ?3) "
         "ORDER BY k, seq LIMIT ?4";
}

// The claim in one statement. ?2 lease until.
const std::string& ClaimSql() {
  static const std::string sql =
      "UPDATE jobs SET state = 1, attempt = attempt + 1, claimed_at = ?1, lease_until = ?2 "
      "WHERE seq IN (" + NextToClaimSql(false) + ") RETURNING " FIREBREAK_JOB_COLUMNS ", seq";
  return sql;
}

// With a throttle each job is looked at before it is claimed (ApplyThrottledClaim).
const std::string& ThrottledCandidatesSql() {
  static const std::string sql = NextToClaimSql(true);
  return sql;
}

bool ParseInt64(std::string_view text, int64_t& out) {
  if (text.empty()) return false;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc() && end == text.data() + text.size();
}

// Parses a ListDead cursor "<dead_at>.<seq>".
bool ParseDeadCursor(const std::string& cursor, int64_t& dead_at, int64_t& seq) {
  size_t dot = cursor.find('.');
  if (dot == std::string::npos) return false;
  std::string_view view(cursor);
  return ParseInt64(view.substr(0, dot), dead_at) && ParseInt64(view.substr(dot + 1), seq);
}

// Ends a read transaction on the read connection when it goes out of scope.
class ReadTransaction {
 public:
  ReadTransaction(const sqlite::Statement& begin, const sqlite::Statement& commit)
      : commit_(commit) {
    sqlite::Query query(begin);
    status_ = query.Run();
  }
  ReadTransaction(const ReadTransaction&) = delete;
  ReadTransaction& operator=(const ReadTransaction&) = delete;
  ~ReadTransaction() {
    if (!status_.ok()) return;
    sqlite::Query query(commit_);
    Status ignored = query.Run();  // a read-only COMMIT only releases the snapshot
    (void)ignored;
  }
  const Status& status() const { return status_; }

 private:
  const sqlite::Statement& commit_;
  Status status_;
};

}  // namespace

SqliteQueue::SqliteQueue(const QueueConfig& config, Clock& clock, const SqliteQueueOptions& options)
    : path_(config.path),
      max_depth_(config.max_depth),
      dedupe_ttl_ms_(config.dedupe_ttl.count()),
      retention_ms_(config.retention.count()),
      retention_payload_ms_(config.retention_payload.count()),
      redact_(config.redact),
      durability_(config.durability),
      timeout_(config.timeout),
      cache_size_(config.cache_size),
      options_(options),
      clock_(clock),
      pending_(config.timeout, Unavailable("queue database " + config.path + " is closed"),
               &SqliteQueue::FailOp),
      health_("sqlite " + config.path, config.timeout, clock) {}

Result<std::unique_ptr<SqliteQueue>> SqliteQueue::Open(const QueueConfig& config, Clock& clock,
                                                       const SqliteQueueOptions& options) {
  if (config.path.empty()) return InvalidArgument("queue.path is empty");
  std::unique_ptr<SqliteQueue> queue(new SqliteQueue(config, clock, options));
  Status status = queue->Init();
  if (!status.ok()) {
    return Status(StatusCode::kUnavailable,
                  "queue database " + config.path + ": " + status.message());
  }
  queue->writer_ = std::thread([q = queue.get()] { q->WriterLoop(); });
  return queue;
}

Status SqliteQueue::Init() {
  std::filesystem::path parent = std::filesystem::path(path_).parent_path();
  if (!parent.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(parent, ec);
    if (ec) return Unavailable("cannot create directory " + parent.string() + ": " + ec.message());
  }
  const int busy_ms = static_cast<int>(options_.busy_timeout.count());

  Result<std::unique_ptr<sqlite::Connection>> db = sqlite::Connection::Open(path_, busy_ms);
  if (!db.ok()) return db.status();
  write_db_ = std::move(*db);
  sqlite::Connection& w = *write_db_;

  Result<std::string> mode = w.QueryText("PRAGMA journal_mode = WAL");
  if (!mode.ok()) return mode.status();
  if (*mode != "wal")
    return Unavailable("cannot switch to WAL mode (journal_mode is " + *mode + ")");
  // FULL syncs the WAL at every commit (power-loss safe); NORMAL only at checkpoints,
  // which still survives a crash of the process because the OS holds the writes.
  const char* synchronous = durability_ == Durability::kFsync ? "PRAGMA synchronous = FULL"
                                                              : "PRAGMA synchronous = NORMAL";
  if (Status s = w.Exec(synchronous); !s.ok()) return s;
  sync_full_ = durability_ == Durability::kFsync;
  // Keep a WAL grown by a burst from staying large after it is checkpointed.
  if (Status s = w.Exec("PRAGMA journal_size_limit = 67108864"); !s.ok()) return s;
  // Dedupe keys arrive in random order, so each one dirties its own B-tree page: the
  // cache keeps the hot ones. It is the process's largest allocation, so it is bounded
  // by config (queue.cache_size, in KiB as a negative pragma value).
  if (Status s = w.Exec("PRAGMA cache_size = -" + std::to_string(std::max<uint64_t>(
                                                      1, cache_size_ / 1024)));
      !s.ok()) {
    return s;
  }
  // The auto-checkpoint runs inside a commit, so its size is the ingest p99: at SQLite's
  // default of 1000 pages (4 MiB) the pause is a few ms; at 10000 pages it measured
  // 15-30 ms for the same throughput (docs/benchmarks.md).
  if (Status s = w.Exec("PRAGMA wal_autocheckpoint = 1000"); !s.ok()) return s;

  if (Status s = w.Exec("BEGIN IMMEDIATE"); !s.ok()) return s;
  Status schema = [&]() -> Status {
    Result<std::string> version_text = w.QueryText("PRAGMA user_version");
    if (!version_text.ok()) return version_text.status();
    int64_t version = 0;
    if (!ParseInt64(*version_text, version)) return Internal("bad user_version " + *version_text);
    if (version > kSqliteQueueSchemaVersion) {
      return Unavailable("schema version " + std::to_string(version) +
                         " is newer than this build supports (" +
                         std::to_string(kSqliteQueueSchemaVersion) + ")");
    }
    if (version < kSqliteQueueSchemaVersion) {
      // Under BEGIN IMMEDIATE: a second process opening the file at the same time waits,
      // then finds it migrated.
      for (int64_t next = version; next < kSqliteQueueSchemaVersion; ++next) {
        if (Status s = w.Exec(kMigrations[next]); !s.ok()) return s;
      }
      if (Status s = w.Exec("PRAGMA user_version = " + std::to_string(kSqliteQueueSchemaVersion));
          !s.ok()) {
        return s;
      }
    }
    return w.Exec("COMMIT");
  }();
  if (!schema.ok()) {
    Status ignored = w.Exec("ROLLBACK");
    (void)ignored;
    return schema;
  }

  struct Prepared {
    sqlite::Statement* target;
    const char* sql;
  };
  const Prepared writer_statements[] = {
      {&write_.begin, "BEGIN IMMEDIATE"},
      {&write_.commit, "COMMIT"},
      {&write_.rollback, "ROLLBACK"},
      {&write_.find_dedupe_key, "SELECT job_id, expires_at FROM dedupe_keys WHERE key = ?1"},
      {&write_.upsert_dedupe_key,
       "INSERT INTO dedupe_keys (key, job_id, expires_at) VALUES (?1, ?2, ?3) "
       "ON CONFLICT (key) DO UPDATE SET job_id = excluded.job_id, expires_at = "
       "excluded.expires_at"},
      {&write_.insert_job,
       "INSERT INTO jobs (id, type, source, dedupe_key, traceparent, ordering_key, state, "
       "attempt, max_attempts, enqueued_at, run_at, claimed_at, lease_until, dead_at, payload, "
       "headers, parent_id, replay_of, search_keys, key_limit, parked, priority) VALUES (?1, "
       "?2, ?3, ?4, ?5, ?6, 0, 0, ?7, ?8, ?9, 0, 0, 0, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17) "
       "RETURNING seq"},
      {&write_.insert_key, "INSERT OR IGNORE INTO job_keys (key, seq) VALUES (?1, ?2)"},
      {&write_.delete_key, "DELETE FROM job_keys WHERE key = ?1 AND seq = ?2"},
      {&write_.delete_job_by_seq, "DELETE FROM jobs WHERE seq = ?1"},
      {&write_.select_job, "SELECT " FIREBREAK_JOB_COLUMNS ", seq FROM jobs WHERE id = ?1"},
      {&write_.claim, ClaimSql().c_str()},
      {&write_.throttled_candidates, ThrottledCandidatesSql().c_str()},
      {&write_.claim_one,
       "UPDATE jobs SET state = 1, attempt = attempt + 1, claimed_at = ?1, lease_until = ?2 "
       "WHERE seq = ?3 AND state = 0 RETURNING " FIREBREAK_JOB_COLUMNS ", seq"},
      {&write_.defer_job, "UPDATE jobs SET run_at = ?2 WHERE seq = ?1 AND state = 0"},
      // The start that must leave the window before the key has room: the limit-th
      // newest (?3 = limit - 1) of those after ?2 = now - period.
      {&write_.nth_recent_start,
       "SELECT at FROM key_starts WHERE key = ?1 AND at > ?2 ORDER BY at DESC LIMIT 1 OFFSET ?3"},
      {&write_.record_start, "INSERT INTO key_starts (key, at, expires_at) VALUES (?1, ?2, ?3)"},
      // Reads every in-flight job's index entry (lease_until leads): bounded by what all
      // workers run at once.
      {&write_.count_in_flight,
       "SELECT COUNT(*) FROM jobs INDEXED BY jobs_in_flight WHERE state = 1 AND type = ?1"},
      {&write_.prune_starts,
       "DELETE FROM key_starts WHERE rowid IN (SELECT rowid FROM key_starts WHERE "
       "expires_at <= ?1 LIMIT ?2)"},
      // The outcome statements return the job's type: a row means the attempt was the
      // job's (the finish is not stale), and Throughput counts it under that type.
      {&write_.delete_job,
       "DELETE FROM jobs WHERE id = ?1 AND state = 1 AND attempt = ?2 "
       "RETURNING type, seq, search_keys, ordering_key, parked"},
      {&write_.succeed_job,
       "UPDATE jobs SET state = 3, finished_at = ?3, lease_until = 0 "
       "WHERE id = ?1 AND state = 1 AND attempt = ?2 RETURNING type, ordering_key, parked"},
      {&write_.delete_attempts, "DELETE FROM attempts WHERE job_id = ?1"},
      {&write_.insert_attempt,
       "INSERT INTO attempts (job_id, attempt, started_at, duration_ms, outcome, error) "
       "VALUES (?1, ?2, ?3, ?4, ?5, ?6)"},
      {&write_.release_job,
       "UPDATE jobs SET state = 0, run_at = ?3, lease_until = 0, attempt = attempt - 1 "
       "WHERE id = ?1 AND state = 1 AND attempt = ?2 RETURNING type"},
      {&write_.retry_job,
       "UPDATE jobs SET state = 0, run_at = ?3, lease_until = 0 "
       "WHERE id = ?1 AND state = 1 AND attempt = ?2 RETURNING type"},
      {&write_.kill_job,
       "UPDATE jobs SET state = 2, dead_at = ?3, finished_at = ?3, lease_until = 0, "
       "last_error = ?4 WHERE id = ?1 AND state = 1 AND attempt = ?2 "
       "RETURNING type, ordering_key, parked"},
      {&write_.expired_leases,
       "SELECT id, attempt, max_attempts, claimed_at, traceparent FROM jobs "
       "WHERE state = 1 AND lease_until <= ?1 ORDER BY lease_until LIMIT ?2"},
      {&write_.prune_dedupe_keys,
       "DELETE FROM dedupe_keys WHERE key IN "
       "(SELECT key FROM dedupe_keys WHERE expires_at <= ?1 LIMIT ?2)"},
      {&write_.count_depth, "SELECT COUNT(*) FROM jobs WHERE state = 0"},
      {&write_.next_lease_expiry, "SELECT MIN(lease_until) FROM jobs WHERE state = 1"},
      {&write_.mark_replayed,
       "UPDATE jobs SET state = 5, replayed_as = ?2, finished_at = ?3 WHERE id = ?1 AND state = 2"},
      {&write_.dead_chunk,
       "SELECT id FROM jobs WHERE state = 2 AND (?1 = '' OR type = ?1) "
       "ORDER BY dead_at, seq LIMIT ?2"},
      {&write_.run_now, "UPDATE jobs SET run_at = ?2 WHERE id = ?1 AND state = 0 AND run_at > ?2"},
      {&write_.cancel_job,
       "UPDATE jobs SET state = 4, finished_at = ?2, "
       "last_error = CASE WHEN ?3 = '' THEN last_error ELSE ?3 END "
       "WHERE id = ?1 AND state = 0 RETURNING type, ordering_key, parked"},
      {&write_.find_debounce, "SELECT job_id FROM debounce WHERE key = ?1"},
      {&write_.upsert_debounce,
       "INSERT INTO debounce (key, job_id) VALUES (?1, ?2) "
       "ON CONFLICT (key) DO UPDATE SET job_id = excluded.job_id"},
      // Entries whose job no longer waits (ran, or was cancelled) hold nothing back.
      {&write_.prune_debounce,
       "DELETE FROM debounce WHERE key IN (SELECT d.key FROM debounce AS d LEFT JOIN jobs AS j "
       "ON j.id = d.job_id WHERE j.state IS NULL OR j.state != 0 LIMIT ?1)"},
      {&write_.pause, "INSERT OR IGNORE INTO paused (type) VALUES (?1)"},
      {&write_.resume, "DELETE FROM paused WHERE type = ?1"},
      {&write_.insert_audit,
       "INSERT INTO audit (at, actor, action, target, count, detail) "
       "VALUES (?1, ?2, ?3, ?4, ?5, ?6)"},
      {&write_.expired_finished,
       "SELECT seq, id, search_keys, type, state FROM jobs WHERE state >= 3 "
       "AND payload_pruned IN (0, 1) AND finished_at <= ?1 LIMIT ?2"},
      {&write_.prune_payloads,
       "UPDATE jobs SET payload = 'null', headers = '{}', payload_pruned = 1 WHERE seq IN "
       "(SELECT seq FROM jobs WHERE state >= 3 AND payload_pruned = 0 AND finished_at <= ?1 "
       "LIMIT ?2)"},
      {&write_.add_finished_count,
       "INSERT INTO finished_counts (type, state, n) VALUES (?1, ?2, ?3) "
       "ON CONFLICT (type, state) DO UPDATE SET n = MAX(0, n + excluded.n)"},
      {&write_.add_throughput,
       "INSERT INTO throughput (minute, type, arrived, finished, busy_ms, first_at) "
       "VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (minute, type) DO UPDATE SET "
       "arrived = arrived + excluded.arrived, finished = finished + excluded.finished, "
       "busy_ms = busy_ms + excluded.busy_ms, first_at = MIN(first_at, excluded.first_at)"},
      {&write_.prune_throughput, "DELETE FROM throughput WHERE minute < ?1"},
      {&write_.probe, "INSERT INTO probe (id, at) VALUES (1, ?1) ON CONFLICT (id) DO UPDATE "
                      "SET at = excluded.at"},
      // A key's line (kSchemaV5): its unparked jobs, counted up to the limit that matters.
      {&write_.count_key_line,
       "SELECT COUNT(*) FROM (SELECT 1 FROM jobs WHERE type = ?1 AND ordering_key = ?2 "
       "AND ordering_key != '' AND finished_at = 0 AND parked = 0 LIMIT ?3)"},
      // The oldest parked job of a key joins the line. It sorts as runnable from now (not
      // from when it arrived), behind every job that was runnable before it: a key with a
      // long backlog takes its turn after the keys already waiting.
      {&write_.promote_key_line,
       "UPDATE jobs SET parked = 0, run_at = MAX(run_at, ?3) WHERE seq = (SELECT seq FROM "
       "jobs WHERE type = ?1 AND ordering_key = ?2 AND ordering_key != '' "
       "AND finished_at = 0 AND parked = 1 ORDER BY seq LIMIT 1) RETURNING run_at"},
      {&write_.purge_job,
       "DELETE FROM jobs WHERE id = ?1 AND state = 2 RETURNING id, seq, search_keys"},
      {&write_.purge_chunk,
       "DELETE FROM jobs WHERE seq IN (SELECT seq FROM jobs WHERE state = 2 "
       "AND (?1 = '' OR type = ?1) LIMIT ?2) RETURNING id, seq, search_keys"},
  };
  for (const Prepared& p : writer_statements) {
    Result<sqlite::Statement> statement = w.Prepare(p.sql);
    if (!statement.ok()) return statement.status();
    *p.target = std::move(*statement);
  }

  Result<std::unique_ptr<sqlite::Connection>> reader = sqlite::Connection::Open(path_, busy_ms);
  if (!reader.ok()) return reader.status();
  read_db_ = std::move(*reader);
  if (Status s = read_db_->Exec("PRAGMA query_only = 1"); !s.ok()) return s;
  if (Status s = read_db_->Exec("PRAGMA cache_size = -2048"); !s.ok()) return s;
  const Prepared read_statements[] = {
      {&read_.begin, "BEGIN"},
      {&read_.commit, "COMMIT"},
      {&read_.get_job, "SELECT " FIREBREAK_JOB_COLUMNS " FROM jobs WHERE id = ?1"},
      {&read_.get_attempts,
       "SELECT attempt, started_at, duration_ms, outcome, error FROM attempts "
       "WHERE job_id = ?1 ORDER BY id"},
      {&read_.list_dead, "SELECT " FIREBREAK_JOB_COLUMNS ", dead_at, seq FROM jobs "
                         "WHERE state = 2 AND (?1 = '' OR type = ?1) AND (dead_at, seq) < (?2, ?3) "
                         "ORDER BY dead_at DESC, seq DESC LIMIT ?4"},
      {&read_.depth_ready,
       "SELECT type, SUM(run_at <= ?1), SUM(run_at > ?1), "
       "MIN(CASE WHEN run_at <= ?1 THEN enqueued_at END) FROM jobs INDEXED BY jobs_waiting "
       "WHERE state = 0 GROUP BY type"},
      {&read_.finished_counts, "SELECT type, state, n FROM finished_counts WHERE n > 0"},
      {&read_.paused, "SELECT type FROM paused"},
      // ListJobs scans (see there): one per driving index, each row with what the
      // filter checks; ?2 is the payload substring, tested only when given (CASE is lazy:
      // no payload is read without one).
      {&read_.scan_key,
       "SELECT j.seq, j.state, j.run_at, j.type, j.source, j.enqueued_at, "
       "CASE WHEN ?2 = '' THEN 1 ELSE instr(j.payload, ?2) > 0 END "
       "FROM job_keys AS k JOIN jobs AS j ON j.seq = k.seq "
       "WHERE k.key = ?1 AND k.seq < ?3 ORDER BY k.seq DESC"},
      {&read_.scan_state,
       "SELECT seq, state, run_at, type, source, enqueued_at, "
       "CASE WHEN ?2 = '' THEN 1 ELSE instr(payload, ?2) > 0 END "
       "FROM jobs WHERE state = ?1 AND seq < ?3 ORDER BY seq DESC"},
      {&read_.scan_all,
       "SELECT seq, state, run_at, type, source, enqueued_at, "
       "CASE WHEN ?2 = '' THEN 1 ELSE instr(payload, ?2) > 0 END "
       "FROM jobs WHERE seq < ?3 AND ?1 = ?1 ORDER BY seq DESC"},
      {&read_.get_job_by_seq, "SELECT " FIREBREAK_JOB_COLUMNS " FROM jobs WHERE seq = ?1"},
      {&read_.count_key, "SELECT COUNT(*) FROM job_keys WHERE key = ?1"},
      // Finished states are counted by finished_counts (a million retained rows would
      // take ~40 ms to count); the others are bounded by max_depth or small.
      {&read_.count_state,
       "SELECT CASE WHEN ?1 >= 3 THEN (SELECT COALESCE(SUM(n), 0) FROM finished_counts "
       "WHERE state = ?1) ELSE (SELECT COUNT(*) FROM jobs WHERE state = ?1) END"},
      // Two subqueries: SQLite reads MIN and MAX of the rowid in O(1) only one per query.
      {&read_.count_all,
       "SELECT COALESCE((SELECT MAX(seq) FROM jobs) - (SELECT MIN(seq) FROM jobs) + 1, 0)"},
      {&read_.list_audit,
       "SELECT seq, at, actor, action, target, count, detail FROM audit WHERE seq < ?1 "
       "ORDER BY seq DESC LIMIT ?2"},
      // Index-only counts: jobs_finished (payload_pruned, finished_at) and jobs_dead.
      {&read_.history_finished,
       "SELECT (finished_at - ?1) / ?2, COUNT(*) FROM jobs WHERE state >= 3 AND "
       "payload_pruned IN (0, 1) AND finished_at >= ?1 AND finished_at < ?3 GROUP BY 1"},
      {&read_.history_dead,
       "SELECT (dead_at - ?1) / ?2, COUNT(*) FROM jobs WHERE state = 2 AND dead_at >= ?1 "
       "AND dead_at < ?3 GROUP BY 1"},
      // Counted in their partial indexes, which hold the type: the planner would pick
      // jobs_by_state and read every row for its type (35 ms for 10,000 dead jobs among a
      // million kept, against 1 ms).
      {&read_.depth_in_flight,
       "SELECT type, COUNT(*) FROM jobs INDEXED BY jobs_in_flight WHERE state = 1 GROUP BY type"},
      {&read_.depth_dead,
       "SELECT type, COUNT(*) FROM jobs INDEXED BY jobs_dead_by_type WHERE state = 2 "
       "GROUP BY type"},
      {&read_.throughput,
       "SELECT type, SUM(arrived), SUM(finished), SUM(busy_ms) FROM throughput "
       "WHERE minute BETWEEN ?1 AND ?2 GROUP BY type ORDER BY type"},
      {&read_.throughput_since,
       "SELECT MIN(first_at) FROM throughput WHERE minute = (SELECT MIN(minute) FROM throughput)"},
  };
  for (const Prepared& p : read_statements) {
    Result<sqlite::Statement> statement = read_db_->Prepare(p.sql);
    if (!statement.ok()) return statement.status();
    *p.target = std::move(*statement);
  }

  if (Status s = RefreshDepth(); !s.ok()) return s;
  last_sweep_clock_ms_ = clock_.NowMs();
  last_sweep_steady_ = std::chrono::steady_clock::now();
  more_to_sweep_ = true;  // leases may have expired while no process had the file open
  return Status::Ok();
}

SqliteQueue::~SqliteQueue() { Close(); }

Status SqliteQueue::ClosedStatus() const {
  return Unavailable("queue database " + path_ + " is closed");
}

void SqliteQueue::FailOp(Op& op, const Status& status) {
  if (auto* e = std::get_if<EnqueueOp>(&op)) {
    EnqueueResult result;
    result.status = status;
    e->done(std::move(result));
  } else if (auto* c = std::get_if<ClaimOp>(&op)) {
    c->done(status);
  } else if (auto* f = std::get_if<FinishOp>(&op)) {
    f->done(status);
  } else if (auto* a = std::get_if<AdminOp>(&op)) {
    a->done(status);
  }
}

void SqliteQueue::Enqueue(NewJob job, EnqueueCallback done) {
  PrepareNewJob(job, redact_);
  pending_.Submit(EnqueueOp{std::move(job), std::move(done), {}},
                  std::chrono::steady_clock::now() + timeout_);
}

void SqliteQueue::Claim(std::vector<ClaimSlots> slots, ClaimCallback done) {
  pending_.Submit(ClaimOp{std::move(slots), std::move(done), {}, {}});
}

void SqliteQueue::Finish(JobFinish finish, StatusCallback done) {
  PrepareFinish(finish, redact_);
  pending_.Submit(FinishOp{std::move(finish), std::move(done), {}});
}

void SqliteQueue::SetWakeup(std::function<void()> wakeup) { wakeup_.Set(std::move(wakeup)); }

Status SqliteQueue::RunAdminWrite(std::function<Status(int64_t now_ms)> apply) {
  auto committed = std::make_shared<std::promise<Status>>();
  std::future<Status> result = committed->get_future();
  pending_.Submit(
      AdminOp{std::move(apply), [committed](Status s) { committed->set_value(std::move(s)); }});
  return result.get();
}

void SqliteQueue::Close() {
  std::lock_guard close_lock(close_mu_);
  pending_.Close();
  // A callback that calls Close() runs on the writer thread, which cannot join
  // itself; the writer still drains and exits, and the destructor joins it.
  if (writer_.joinable() && writer_.get_id() != std::this_thread::get_id()) {
    writer_.join();
    closed_.store(true);
  }
}

void SqliteQueue::WriterLoop() {
  std::vector<Op> batch;
  const size_t max_batch = static_cast<size_t>(std::max(options_.max_batch, 1));
  batch.reserve(max_batch);
  for (;;) {
    const auto wake_at = more_to_sweep_ ? std::chrono::steady_clock::now()
                                        : last_sweep_steady_ + options_.sweep_interval;
    if (!pending_.Take(batch, max_batch, wake_at)) return;
    if (!batch.empty() || SweepDue(clock_.NowMs())) {
      RunBatch(batch);
      batch.clear();
    }
    if (health_.TakeProbe()) RunProbe();
  }
}

bool SqliteQueue::SweepDue(int64_t now_ms) const {
  return more_to_sweep_ || now_ms >= next_lease_expiry_ms_ ||
         std::chrono::steady_clock::now() - last_sweep_steady_ >= options_.sweep_interval ||
         now_ms - last_sweep_clock_ms_ >= options_.sweep_interval.count() ||
         now_ms < last_sweep_clock_ms_;
}

void SqliteQueue::RunBatch(std::vector<Op>& batch) {
  const int64_t now_ms = clock_.NowMs();
  const int64_t depth_before = depth_;
  const int64_t changes_before = sqlite3_total_changes64(write_db_->get());
  wake_after_commit_ = false;
  batch_throughput_.clear();
  batch_finished_.clear();

  Status status = Transaction(NeedsFullSync(batch), [&]() -> Status {
    if (std::chrono::steady_clock::now() - last_depth_refresh_ >= options_.depth_refresh_interval) {
      if (Status s = RefreshDepth(); !s.ok()) return s;
    }
    if (SweepDue(now_ms)) {
      if (Status s = Sweep(now_ms); !s.ok()) return s;
    }
    for (Op& op : batch) {
      Status applied;
      if (auto* e = std::get_if<EnqueueOp>(&op)) {
        applied = ApplyEnqueue(*e, now_ms);
      } else if (auto* c = std::get_if<ClaimOp>(&op)) {
        applied = ApplyClaim(*c, now_ms);
      } else if (auto* f = std::get_if<FinishOp>(&op)) {
        applied = ApplyFinish(*f, now_ms);
      } else if (auto* a = std::get_if<AdminOp>(&op)) {
        applied = a->apply(now_ms);
      }
      if (!applied.ok()) return applied;
    }
    if (Status s = WriteFinishedCounts(); !s.ok()) return s;
    return WriteThroughput(now_ms);
  });
  if (!status.ok()) {
    depth_ = depth_before;
    wake_after_commit_ = false;
    // A full disk fails every batch, hundreds a second: one line, then a count.
    log::WriteLimited(log::Level::kWarn, "queue write batch failed: " + status.message(),
                      "queue write batch failed; nothing of it was stored",
                      {{"error", status.message()},
                       {"operations", static_cast<int64_t>(batch.size())}});
  } else {
    committed_batches_.fetch_add(1);
    committed_operations_.fetch_add(static_cast<int64_t>(batch.size()));
  }
  ReportRound(status, changes_before, sync_full_ || durability_ != Durability::kFsync);

  // Wake the worker first: it claims through this same thread, after these callbacks.
  if (wake_after_commit_) wakeup_.Run();
  for (Op& op : batch) Deliver(op, status);
}

void SqliteQueue::ReportRound(const Status& status, int64_t changes_before, bool durable) {
  if (!status.ok()) {
    health_.Failed(status);
  } else if (durable && sqlite3_total_changes64(write_db_->get()) != changes_before) {
    health_.Wrote();
  }
}

void SqliteQueue::RunProbe() {
  const int64_t changes_before = sqlite3_total_changes64(write_db_->get());
  // With durability fsync the probe syncs as an enqueue would: a disk that fails fsync
  // is not writable for the jobs this queue ACKs.
  Status status = Transaction(durability_ == Durability::kFsync, [this] {
    sqlite::Query probe(write_.probe);
    probe.Bind(1, clock_.NowMs());
    return probe.Run();
  });
  ReportRound(status, changes_before, /*durable=*/true);
}

Status SqliteQueue::Transaction(bool full_sync, const std::function<Status()>& body) {
  Status status = SetSyncMode(full_sync);
  bool in_transaction = false;
  if (status.ok()) {
    sqlite::Query begin(write_.begin);
    status = begin.Run();
    in_transaction = status.ok();
  }
  if (status.ok()) status = body();
  if (status.ok()) {
    sqlite::Query commit(write_.commit);
    status = commit.Run();
  }
  if (status.ok()) return status;
  if (in_transaction) {
    // A failed COMMIT or an I/O error may already have ended the transaction; then this
    // ROLLBACK fails harmlessly.
    sqlite::Query rollback(write_.rollback);
    Status ignored = rollback.Run();
    (void)ignored;
  }
  return Status(status.code(), "queue database " + path_ + ": " + status.message());
}

bool SqliteQueue::NeedsFullSync(const std::vector<Op>& batch) const {
  // Only what ingress ACKs (and admin writes) must be on disk before the callback runs.
  // Claims, outcomes and sweeps may be lost to a power cut: the job is then delivered
  // again (at-least-once), so their commits skip the fsync. A later FULL commit syncs
  // the WAL file as a whole, so it also makes every earlier commit durable.
  return durability_ == Durability::kFsync &&
         std::any_of(batch.begin(), batch.end(), [](const Op& op) {
           return std::holds_alternative<EnqueueOp>(op) || std::holds_alternative<AdminOp>(op);
         });
}

Status SqliteQueue::SetSyncMode(bool full) {
  if (full == sync_full_) return Status::Ok();
  Status status =
      write_db_->Exec(full ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL");
  if (status.ok()) sync_full_ = full;
  return status;
}

void SqliteQueue::Deliver(Op& op, const Status& batch_status) {
  if (auto* e = std::get_if<EnqueueOp>(&op)) {
    if (!batch_status.ok()) e->result = EnqueueResult{batch_status, EnqueueOutcome::kAccepted, ""};
    RunQueueCallback([&] { e->done(std::move(e->result)); });
  } else if (auto* c = std::get_if<ClaimOp>(&op)) {
    Status status = batch_status.ok() ? c->status : batch_status;
    if (status.ok()) {
      RunQueueCallback([&] { c->done(std::move(c->jobs)); });
    } else {
      RunQueueCallback([&] { c->done(std::move(status)); });
    }
  } else if (auto* f = std::get_if<FinishOp>(&op)) {
    Status status = batch_status.ok() ? f->status : batch_status;
    RunQueueCallback([&] { f->done(std::move(status)); });
  } else if (auto* a = std::get_if<AdminOp>(&op)) {
    RunQueueCallback([&] { a->done(batch_status); });
  }
}

Status SqliteQueue::RefreshDepth() {
  sqlite::Query count(write_.count_depth);
  Result<bool> row = count.Next();
  if (!row.ok()) return row.status();
  depth_ = *row ? count.Int(0) : 0;
  last_depth_refresh_ = std::chrono::steady_clock::now();
  return Status::Ok();
}

Status SqliteQueue::Sweep(int64_t now_ms) {
  last_sweep_clock_ms_ = now_ms;
  last_sweep_steady_ = std::chrono::steady_clock::now();
  more_to_sweep_ = false;

  struct Expired {
    std::string id;
    int64_t attempt;
    int64_t max_attempts;
    int64_t claimed_at;
    std::string traceparent;
  };
  std::vector<Expired> expired;
  {
    sqlite::Query query(write_.expired_leases);
    query.Bind(1, now_ms).Bind(2, kSweepChunk);
    for (;;) {
      Result<bool> row = query.Next();
      if (!row.ok()) return row.status();
      if (!*row) break;
      expired.push_back({query.Text(0), query.Int(1), query.Int(2), query.Int(3), query.Text(4)});
    }
  }
  if (static_cast<int64_t>(expired.size()) == kSweepChunk) more_to_sweep_ = true;
  for (const Expired& job : expired) {
    AttemptRecord record;
    record.attempt = static_cast<int>(job.attempt);
    record.started_at_ms = job.claimed_at;
    record.duration_ms = std::max<int64_t>(0, now_ms - job.claimed_at);
    record.outcome = kLeaseExpiredOutcome;
    record.error = kLeaseExpiredError;
    if (Status s = InsertAttempt(job.id, record); !s.ok()) return s;
    const bool to_dead = job.attempt >= job.max_attempts;
    sqlite::Query update(to_dead ? write_.kill_job : write_.retry_job);
    update.Bind(1, job.id).Bind(2, job.attempt).Bind(3, now_ms);
    if (to_dead) update.Bind(4, std::string_view(kLeaseExpiredError));
    Result<bool> updated = update.Next();  // RETURNING: the change is made at this step
    if (!updated.ok()) return updated.status();
    if (to_dead && *updated) {
      if (Status s = LeaveKeyLine(update.Text(0), update.Text(1), update.Int(2) != 0, now_ms);
          !s.ok()) {
        return s;
      }
    }
    if (!to_dead) {
      ++depth_;
      wake_after_commit_ = true;
    } else {
      log::Warn("job dead-lettered after its last lease expired",
                {{"job_id", job.id},
                 {"attempt", job.attempt},
                 {"trace_id", TraceIdOf(job.traceparent)}});
    }
  }

  {
    sqlite::Query next(write_.next_lease_expiry);
    Result<bool> row = next.Next();
    if (!row.ok()) return row.status();
    const bool any = *row && sqlite3_column_type(write_.next_lease_expiry.get(), 0) != SQLITE_NULL;
    next_lease_expiry_ms_ = any ? next.Int(0) : std::numeric_limits<int64_t>::max();
  }

  {
    sqlite::Query prune_debounce(write_.prune_debounce);
    prune_debounce.Bind(1, kPruneChunk);
    if (Status s = prune_debounce.Run(); !s.ok()) return s;
  }
  {
    sqlite::Query prune_starts(write_.prune_starts);
    prune_starts.Bind(1, now_ms).Bind(2, kPruneChunk);
    if (Status s = prune_starts.Run(); !s.ok()) return s;
    if (prune_starts.Changes() >= kPruneChunk) more_to_sweep_ = true;
  }
  sqlite::Query prune(write_.prune_dedupe_keys);
  prune.Bind(1, now_ms).Bind(2, kPruneChunk);
  if (Status s = prune.Run(); !s.ok()) return s;
  if (prune.Changes() >= kPruneChunk) more_to_sweep_ = true;

  // Throughput rows past retention: at most a few per type each new minute.
  const int64_t minute = ThroughputMinute(now_ms);
  if (minute != throughput_pruned_minute_) {
    sqlite::Query prune_counts(write_.prune_throughput);
    prune_counts.Bind(1, minute - kThroughputRetentionMs / kThroughputBucketMs);
    if (Status s = prune_counts.Run(); !s.ok()) return s;
    throughput_pruned_minute_ = minute;
  }
  return PruneFinished(now_ms);
}

Status SqliteQueue::PruneFinished(int64_t now_ms) {
  struct Expired {
    int64_t seq;
    std::string id;
    std::string search_keys;
    std::string type;
    int64_t state;
  };
  std::vector<Expired> expired;
  {
    sqlite::Query query(write_.expired_finished);
    query.Bind(1, now_ms - retention_ms_).Bind(2, kSweepChunk);
    for (;;) {
      Result<bool> row = query.Next();
      if (!row.ok()) return row.status();
      if (!*row) break;
      expired.push_back({query.Int(0), query.Text(1), query.Text(2), query.Text(3), query.Int(4)});
    }
  }
  if (static_cast<int64_t>(expired.size()) == kSweepChunk) more_to_sweep_ = true;
  for (const Expired& job : expired) {
    if (Status s = DeleteJobRow(job.seq, job.id, job.search_keys); !s.ok()) return s;
    CountState(job.type, job.state, -1);
  }
  if (retention_payload_ms_ > 0 && retention_payload_ms_ < retention_ms_) {
    sqlite::Query prune(write_.prune_payloads);
    prune.Bind(1, now_ms - retention_payload_ms_).Bind(2, kSweepChunk);
    if (Status s = prune.Run(); !s.ok()) return s;
    if (prune.Changes() >= kSweepChunk) more_to_sweep_ = true;
  }
  return Status::Ok();
}

Status SqliteQueue::DeleteJobRow(int64_t seq, const std::string& id,
                                 const std::string& search_keys) {
  {
    sqlite::Query remove(write_.delete_job_by_seq);
    remove.Bind(1, seq);
    if (Status s = remove.Run(); !s.ok()) return s;
  }
  {
    sqlite::Query attempts(write_.delete_attempts);
    attempts.Bind(1, id);
    if (Status s = attempts.Run(); !s.ok()) return s;
  }
  for (const std::string& key : SplitSearchKeys(search_keys)) {
    sqlite::Query remove_key(write_.delete_key);
    remove_key.Bind(1, key).Bind(2, seq);
    if (Status s = remove_key.Run(); !s.ok()) return s;
  }
  return Status::Ok();
}

void SqliteQueue::CountState(const std::string& type, int64_t state, int64_t n) {
  batch_finished_[{type, state}] += n;
}

Status SqliteQueue::WriteFinishedCounts() {
  for (const auto& [key, n] : batch_finished_) {
    if (n == 0) continue;
    sqlite::Query add(write_.add_finished_count);
    add.Bind(1, key.first).Bind(2, key.second).Bind(3, n);
    if (Status s = add.Run(); !s.ok()) return s;
  }
  batch_finished_.clear();
  return Status::Ok();
}

Status SqliteQueue::ApplyEnqueue(EnqueueOp& op, int64_t now_ms) {
  return InsertJob(op.job, now_ms, /*check_depth=*/true, op.result);
}

Status SqliteQueue::InsertJob(NewJob& job, int64_t now_ms, bool check_depth,
                              EnqueueResult& result) {
  if (job.id.empty() || job.type.empty()) {
    result.status = InvalidArgument("a job needs an id and a type");
    return Status::Ok();
  }
  for (const std::string& key : job.dedupe_keys) {
    if (key.empty()) continue;
    sqlite::Query find(write_.find_dedupe_key);
    find.Bind(1, key);
    Result<bool> row = find.Next();
    if (!row.ok()) return row.status();
    if (*row && find.Int(1) > now_ms) {
      result.outcome = EnqueueOutcome::kDuplicate;
      result.job_id = find.Text(0);
      return Status::Ok();
    }
  }
  if (check_depth && max_depth_ > 0 && depth_ >= max_depth_) {
    result.outcome = EnqueueOutcome::kOverloaded;
    return Status::Ok();
  }

  const int64_t enqueued_at = job.enqueued_at_ms > 0 ? job.enqueued_at_ms : now_ms;
  const int64_t run_at = job.run_at_ms > 0 ? job.run_at_ms : enqueued_at;
  const std::string no_key;
  const std::string& first_key = job.dedupe_keys.empty() ? no_key : job.dedupe_keys.front();
  const std::vector<std::string> search_keys = IndexedSearchKeys(job);
  const std::string joined_keys = JoinSearchKeys(search_keys);
  // Debounce: the job waiting under the same key is superseded by this one.
  std::string debounce_key;
  if (!job.debounce_key.empty()) {
    debounce_key = job.type + "\n" + job.debounce_key;
    sqlite::Query find(write_.find_debounce);
    find.Bind(1, debounce_key);
    Result<bool> row = find.Next();
    if (!row.ok()) return row.status();
    if (*row) {
      Result<bool> cancelled = CancelWaiting(find.Text(0), now_ms, "superseded by " + job.id);
      if (!cancelled.ok()) return cancelled.status();
    }
  }
  // Behind key_limit jobs of its key, a job waits parked until one of them leaves.
  const int64_t key_limit = std::max(1, job.key_limit);
  bool parked = false;
  if (!job.ordering_key.empty()) {
    Result<int64_t> line = KeyLineLength(job.type, job.ordering_key, key_limit);
    if (!line.ok()) return line.status();
    parked = *line >= key_limit;
  }
  int64_t seq = 0;
  {
    sqlite::Query insert(write_.insert_job);
    insert.Bind(1, job.id)
        .Bind(2, job.type)
        .Bind(3, job.source)
        .Bind(4, first_key)
        .Bind(5, job.traceparent)
        .Bind(6, job.ordering_key)
        .Bind(7, static_cast<int64_t>(job.max_attempts))
        .Bind(8, enqueued_at)
        .Bind(9, run_at)
        .Bind(10, job.payload_json)
        .Bind(11, job.headers_json)
        .Bind(12, job.parent_id)
        .Bind(13, job.replay_of)
        .Bind(14, joined_keys)
        .Bind(15, key_limit)
        .Bind(16, static_cast<int64_t>(parked))
        .Bind(17, static_cast<int64_t>(std::clamp(job.priority, 0, kMaxPriority)));
    Result<bool> row = insert.Next();  // RETURNING seq
    if (!row.ok() && row.status().code() == StatusCode::kAlreadyExists) {
      // Only this statement was rolled back; the batch goes on without the job.
      result.status = Status(StatusCode::kAlreadyExists, "job id " + job.id + " already exists");
      return Status::Ok();
    }
    if (!row.ok()) return row.status();
    if (!*row) return Internal("INSERT ... RETURNING gave no row");
    seq = insert.Int(0);
  }
  for (const std::string& key : search_keys) {
    sqlite::Query add_key(write_.insert_key);
    add_key.Bind(1, key).Bind(2, seq);
    if (Status s = add_key.Run(); !s.ok()) return s;
  }
  if (!debounce_key.empty()) {
    sqlite::Query hold(write_.upsert_debounce);
    hold.Bind(1, debounce_key).Bind(2, job.id);
    if (Status s = hold.Run(); !s.ok()) return s;
  }
  const int64_t expires_at = now_ms + dedupe_ttl_ms_;
  for (const std::string& key : job.dedupe_keys) {
    if (key.empty()) continue;
    sqlite::Query upsert(write_.upsert_dedupe_key);
    upsert.Bind(1, key).Bind(2, job.id).Bind(3, expires_at);
    if (Status s = upsert.Run(); !s.ok()) return s;
  }
  ++depth_;
  if (run_at <= now_ms && !parked) wake_after_commit_ = true;
  ++batch_throughput_[job.type].arrived;
  result.outcome = EnqueueOutcome::kAccepted;
  result.job_id = job.id;
  return Status::Ok();
}

Status SqliteQueue::ApplyClaim(ClaimOp& op, int64_t now_ms) {
  for (const ClaimSlots& slot : op.slots) {
    if (slot.limit < 0 || slot.lease_ms <= 0) {
      op.status =
          InvalidArgument("claim of \"" + slot.type + "\" needs limit >= 0 and lease_ms > 0");
      op.jobs.clear();
      return Status::Ok();
    }
  }
  for (ClaimSlots slot : op.slots) {
    if (slot.global_limit > 0) {
      sqlite::Query count(write_.count_in_flight);
      count.Bind(1, slot.type);
      Result<bool> row = count.Next();
      if (!row.ok()) return row.status();
      const int64_t room = slot.global_limit - (*row ? count.Int(0) : 0);
      slot.limit = static_cast<int>(std::clamp<int64_t>(room, 0, slot.limit));
    }
    if (slot.limit == 0) continue;
    std::vector<std::pair<int64_t, Job>> claimed;  // (seq, job)
    if (slot.throttle_limit > 0 && slot.throttle_period_ms > 0) {
      if (Status s = ApplyThrottledClaim(slot, now_ms, claimed); !s.ok()) return s;
    } else {
      sqlite::Query claim(write_.claim);
      claim.Bind(1, now_ms)
          .Bind(2, now_ms + slot.lease_ms)
          .Bind(3, slot.type)
          .Bind(4, slot.limit)
          .Bind(5, slot.priority_step_ms);
      for (;;) {
        Result<bool> row = claim.Next();
        if (!row.ok()) return row.status();
        if (!*row) break;
        claimed.emplace_back(claim.Int(kJobColumnCount), RowToJob(claim));
      }
    }
    // RETURNING gives rows in no promised order; hand them out in claim order.
    auto order = [&](const std::pair<int64_t, Job>& c) {
      return std::pair(c.second.run_at_ms - c.second.priority * slot.priority_step_ms, c.first);
    };
    std::sort(claimed.begin(), claimed.end(),
              [&](const auto& a, const auto& b) { return order(a) < order(b); });
    depth_ -= static_cast<int64_t>(claimed.size());
    if (!claimed.empty()) {
      next_lease_expiry_ms_ = std::min(next_lease_expiry_ms_, now_ms + slot.lease_ms);
    }
    for (auto& [seq, job] : claimed) op.jobs.push_back(std::move(job));
  }
  return Status::Ok();
}

Status SqliteQueue::ApplyThrottledClaim(const ClaimSlots& slot, int64_t now_ms,
                                        std::vector<std::pair<int64_t, Job>>& claimed) {
  // A round looks at as many jobs as are still wanted and claims or defers each. A
  // deferred job no longer counts as runnable, so the next round sees jobs behind it;
  // a few rounds bound the work of one claim when many keys are out of room.
  constexpr int kRounds = 4;
  const auto wanted = static_cast<size_t>(slot.limit);
  for (int round = 0; round < kRounds && claimed.size() < wanted; ++round) {
    std::vector<std::pair<int64_t, std::string>> next;  // (seq, ordering key)
    {
      sqlite::Query candidates(write_.throttled_candidates);
      candidates.Bind(1, now_ms)
          .Bind(3, slot.type)
          .Bind(4, static_cast<int64_t>(wanted - claimed.size()))
          .Bind(5, slot.priority_step_ms);
      for (;;) {
        Result<bool> row = candidates.Next();
        if (!row.ok()) return row.status();
        if (!*row) break;
        next.emplace_back(candidates.Int(0), candidates.Text(1));
      }
    }
    bool deferred = false;
    for (const auto& [seq, key] : next) {
      if (!key.empty()) {
        const std::string line = slot.type + "\n" + key;
        sqlite::Query nth(write_.nth_recent_start);
        nth.Bind(1, line)
            .Bind(2, now_ms - slot.throttle_period_ms)
            .Bind(3, static_cast<int64_t>(slot.throttle_limit - 1));
        Result<bool> full = nth.Next();
        if (!full.ok()) return full.status();
        if (*full) {
          // Runnable again when the oldest start counted against it leaves the window.
          sqlite::Query defer(write_.defer_job);
          defer.Bind(1, seq).Bind(2, nth.Int(0) + slot.throttle_period_ms);
          if (Status s = defer.Run(); !s.ok()) return s;
          deferred = true;
          continue;
        }
        sqlite::Query start(write_.record_start);
        start.Bind(1, line).Bind(2, now_ms).Bind(3, now_ms + slot.throttle_period_ms);
        if (Status s = start.Run(); !s.ok()) return s;
      }
      sqlite::Query claim(write_.claim_one);
      claim.Bind(1, now_ms).Bind(2, now_ms + slot.lease_ms).Bind(3, seq);
      Result<bool> row = claim.Next();
      if (!row.ok()) return row.status();
      if (*row) claimed.emplace_back(claim.Int(kJobColumnCount), RowToJob(claim));
    }
    if (!deferred) break;
  }
  return Status::Ok();
}

Result<int64_t> SqliteQueue::KeyLineLength(const std::string& type, const std::string& key,
                                           int64_t limit) {
  sqlite::Query count(write_.count_key_line);
  count.Bind(1, type).Bind(2, key).Bind(3, limit);
  Result<bool> row = count.Next();
  if (!row.ok()) return row.status();
  return *row ? count.Int(0) : 0;
}

Status SqliteQueue::LeaveKeyLine(const std::string& type, const std::string& key, bool parked,
                                 int64_t now_ms) {
  // A parked job leaving frees no place in the line; an unparked one frees exactly one.
  if (key.empty() || parked) return Status::Ok();
  sqlite::Query promote(write_.promote_key_line);
  promote.Bind(1, type).Bind(2, key).Bind(3, now_ms);
  Result<bool> row = promote.Next();
  if (!row.ok()) return row.status();
  if (*row && promote.Int(0) <= now_ms) wake_after_commit_ = true;
  return Status::Ok();
}

Status SqliteQueue::InsertAttempt(const std::string& job_id, const AttemptRecord& record) {
  sqlite::Query insert(write_.insert_attempt);
  insert.Bind(1, job_id)
      .Bind(2, static_cast<int64_t>(record.attempt))
      .Bind(3, record.started_at_ms)
      .Bind(4, record.duration_ms)
      .Bind(5, record.outcome)
      .Bind(6, record.error);
  return insert.Run();
}

void SqliteQueue::CountFinished(const std::string& type, const JobFinish& finish) {
  if (finish.disposition == Disposition::kRelease) return;
  ThroughputDelta& delta = batch_throughput_[type];
  ++delta.finished;
  delta.busy_ms += std::max<int64_t>(0, finish.record.duration_ms);
}

Status SqliteQueue::WriteThroughput(int64_t now_ms) {
  const int64_t minute = ThroughputMinute(now_ms);
  for (const auto& [type, delta] : batch_throughput_) {
    sqlite::Query add(write_.add_throughput);
    add.Bind(1, minute)
        .Bind(2, type)
        .Bind(3, delta.arrived)
        .Bind(4, delta.finished)
        .Bind(5, delta.busy_ms)
        .Bind(6, now_ms);
    if (Status s = add.Run(); !s.ok()) return s;
  }
  batch_throughput_.clear();
  return Status::Ok();
}

Status SqliteQueue::ApplyFinish(FinishOp& op, int64_t now_ms) {
  JobFinish& finish = op.finish;
  const int64_t attempt = finish.attempt;
  auto stale = [&] {
    return FailedPrecondition("job " + finish.job_id + " does not hold attempt " +
                              std::to_string(attempt) + " (lease expired or already finished)");
  };
  switch (finish.disposition) {
    case Disposition::kSucceeded: {
      for (const NewJob& follow_up : finish.follow_ups) {
        if (follow_up.id.empty() || follow_up.type.empty()) {
          op.status = InvalidArgument("a follow-up job needs an id and a type");
          return Status::Ok();  // before anything changed: the job stays in flight
        }
      }
      if (retention_ms_ > 0) {
        // Kept as history: the job and its attempts, the successful one included.
        sqlite::Query succeed(write_.succeed_job);
        succeed.Bind(1, finish.job_id).Bind(2, attempt).Bind(3, now_ms);
        Result<bool> updated = succeed.Next();  // RETURNING: the change is made at this step
        if (!updated.ok()) return updated.status();
        if (!*updated) {
          op.status = stale();
          return Status::Ok();
        }
        const std::string type = succeed.Text(0);
        CountFinished(type, finish);
        CountState(type, kStateSucceeded, 1);
        if (Status s = LeaveKeyLine(type, succeed.Text(1), succeed.Int(2) != 0, now_ms); !s.ok()) {
          return s;
        }
        AttemptRecord record = finish.record;
        record.attempt = finish.attempt;
        if (Status s = InsertAttempt(finish.job_id, record); !s.ok()) return s;
      } else {
        int64_t seq = 0;
        std::string search_keys;
        {
          sqlite::Query remove(write_.delete_job);
          remove.Bind(1, finish.job_id).Bind(2, attempt);
          Result<bool> removed = remove.Next();  // RETURNING: the change is made at this step
          if (!removed.ok()) return removed.status();
          if (!*removed) {
            op.status = stale();
            return Status::Ok();
          }
          CountFinished(remove.Text(0), finish);
          seq = remove.Int(1);
          search_keys = remove.Text(2);
          if (Status s = LeaveKeyLine(remove.Text(0), remove.Text(3), remove.Int(4) != 0, now_ms);
              !s.ok()) {
            return s;
          }
        }
        // The row is gone; this removes what hangs off it.
        if (Status s = DeleteJobRow(seq, finish.job_id, search_keys); !s.ok()) return s;
      }
      // The outbox: the job's actions commit with its completion, or not at all.
      for (NewJob& follow_up : finish.follow_ups) {
        EnqueueResult stored;
        if (Status s = InsertJob(follow_up, now_ms, /*check_depth=*/false, stored); !s.ok()) {
          return s;
        }
        // Not stored: a duplicate (its dedupe key is live) or an id that exists already.
        (void)stored;
      }
      return Status::Ok();
    }
    case Disposition::kRetry:
    case Disposition::kRelease:
    case Disposition::kDead: {
      const bool retry = finish.disposition != Disposition::kDead;
      {
        sqlite::Statement& statement = finish.disposition == Disposition::kRetry ? write_.retry_job
                                       : finish.disposition == Disposition::kRelease
                                           ? write_.release_job
                                           : write_.kill_job;
        sqlite::Query update(statement);
        update.Bind(1, finish.job_id).Bind(2, attempt).Bind(3, retry ? finish.run_at_ms : now_ms);
        if (!retry) update.Bind(4, finish.record.error);
        Result<bool> updated = update.Next();  // RETURNING: the change is made at this step
        if (!updated.ok()) return updated.status();
        if (!*updated) {
          op.status = stale();
          return Status::Ok();
        }
        CountFinished(update.Text(0), finish);
        // A dead job leaves its key's line; a retried or released one keeps its place.
        if (!retry) {
          if (Status s = LeaveKeyLine(update.Text(0), update.Text(1), update.Int(2) != 0, now_ms);
              !s.ok()) {
            return s;
          }
        }
      }
      // The record is filed under the attempt the job held, whatever the caller wrote.
      AttemptRecord record = finish.record;
      record.attempt = finish.attempt;
      const bool keep = finish.keep_record || finish.disposition != Disposition::kRelease;
      if (keep) {
        if (Status s = InsertAttempt(finish.job_id, record); !s.ok()) return s;
      }
      if (retry) {
        ++depth_;
        wake_after_commit_ = true;
      }
      return Status::Ok();
    }
  }
  op.status = InvalidArgument("unknown disposition");
  return Status::Ok();
}

Result<std::vector<TypeDepth>> SqliteQueue::Stats() {
  std::lock_guard lock(read_mu_);
  if (closed_.load() || !read_db_) return ClosedStatus();
  ReadTransaction transaction(read_.begin, read_.commit);
  if (!transaction.status().ok()) return Unavailable(path_ + ": " + transaction.status().message());

  std::map<std::string, TypeDepth> by_type;
  auto depth_of = [&](const std::string& type) -> TypeDepth& {
    TypeDepth& depth = by_type[type];
    depth.type = type;
    return depth;
  };
  const int64_t now_ms = clock_.NowMs();
  {
    sqlite::Query ready(read_.depth_ready);
    ready.Bind(1, now_ms);
    for (;;) {
      Result<bool> row = ready.Next();
      if (!row.ok()) return Unavailable(path_ + ": " + row.status().message());
      if (!*row) break;
      TypeDepth& depth = depth_of(ready.Text(0));
      depth.ready = ready.Int(1);
      depth.delayed = ready.Int(2);
      depth.oldest_ready_at_ms = ready.Int(3);  // NULL (nothing runnable) reads as 0
    }
  }
  for (auto [statement, field] : {std::pair{&read_.depth_in_flight, &TypeDepth::in_flight},
                                  std::pair{&read_.depth_dead, &TypeDepth::dead}}) {
    sqlite::Query count(*statement);
    for (;;) {
      Result<bool> row = count.Next();
      if (!row.ok()) return Unavailable(path_ + ": " + row.status().message());
      if (!*row) break;
      depth_of(count.Text(0)).*field = count.Int(1);
    }
  }
  {
    sqlite::Query finished(read_.finished_counts);
    for (;;) {
      Result<bool> row = finished.Next();
      if (!row.ok()) return Unavailable(path_ + ": " + row.status().message());
      if (!*row) break;
      TypeDepth& depth = depth_of(finished.Text(0));
      const int64_t state = finished.Int(1);
      int64_t* field = state == kStateSucceeded   ? &depth.succeeded
                       : state == kStateCancelled ? &depth.cancelled
                                                  : &depth.replayed;
      *field = finished.Int(2);
    }
  }
  {
    sqlite::Query paused(read_.paused);
    for (;;) {
      Result<bool> row = paused.Next();
      if (!row.ok()) return Unavailable(path_ + ": " + row.status().message());
      if (!*row) break;
      depth_of(paused.Text(0)).paused = true;
    }
  }
  std::vector<TypeDepth> out;
  out.reserve(by_type.size());
  for (auto& [type, depth] : by_type) out.push_back(std::move(depth));
  return out;
}

Result<std::vector<TypeThroughput>> SqliteQueue::Throughput(int64_t window_ms) {
  std::lock_guard lock(read_mu_);
  if (closed_.load() || !read_db_) return ClosedStatus();
  ReadTransaction transaction(read_.begin, read_.commit);
  if (!transaction.status().ok()) return Unavailable(path_ + ": " + transaction.status().message());
  const int64_t now_ms = clock_.NowMs();
  const ThroughputBuckets buckets = ThroughputBucketsAt(now_ms, window_ms);
  int64_t since_ms = 0;
  {
    sqlite::Query since(read_.throughput_since);
    Result<bool> row = since.Next();
    if (!row.ok()) return Unavailable(path_ + ": " + row.status().message());
    if (*row) since_ms = since.Int(0);  // NULL (no rows at all) reads as 0
  }
  const int64_t covered_ms = ThroughputCoveredMs(now_ms, buckets, since_ms);
  std::vector<TypeThroughput> out;
  sqlite::Query sums(read_.throughput);
  sums.Bind(1, buckets.first_minute).Bind(2, buckets.last_minute);
  for (;;) {
    Result<bool> row = sums.Next();
    if (!row.ok()) return Unavailable(path_ + ": " + row.status().message());
    if (!*row) break;
    TypeThroughput t;
    t.type = sums.Text(0);
    t.window_ms = covered_ms;
    t.arrived = sums.Int(1);
    t.finished = sums.Int(2);
    t.busy_ms = sums.Int(3);
    out.push_back(std::move(t));
  }
  return out;
}

QueueHealth SqliteQueue::Health() {
  if (closed_.load()) return {false, ClosedStatus().message(), clock_.NowMs()};
  return health_.Get(pending_.Stalled());
}

Status SqliteQueue::ReadAttempts(const std::string& job_id, std::vector<AttemptRecord>& out) {
  sqlite::Query query(read_.get_attempts);
  query.Bind(1, job_id);
  for (;;) {
    Result<bool> row = query.Next();
    if (!row.ok()) return Unavailable(path_ + ": " + row.status().message());
    if (!*row) return Status::Ok();
    AttemptRecord record;
    record.attempt = static_cast<int>(query.Int(0));
    record.started_at_ms = query.Int(1);
    record.duration_ms = query.Int(2);
    record.outcome = query.Text(3);
    record.error = query.Text(4);
    out.push_back(std::move(record));
  }
}

Result<Job> SqliteQueue::GetJob(const std::string& id) {
  std::lock_guard lock(read_mu_);
  if (closed_.load() || !read_db_) return ClosedStatus();
  ReadTransaction transaction(read_.begin, read_.commit);
  if (!transaction.status().ok()) return Unavailable(path_ + ": " + transaction.status().message());
  Job job;
  {
    sqlite::Query query(read_.get_job);
    query.Bind(1, id);
    Result<bool> row = query.Next();
    if (!row.ok()) return Unavailable(path_ + ": " + row.status().message());
    if (!*row) return NotFound("no job " + id);
    job = RowToJob(query);
  }
  if (Status s = ReadAttempts(id, job.attempts); !s.ok()) return s;
  return job;
}

Result<DeadListPage> SqliteQueue::ListDead(const std::string& type, int limit,
                                           const std::string& cursor) {
  if (limit <= 0) return InvalidArgument("limit must be positive");
  limit = std::min(limit, kMaxDeadPage);
  int64_t after_dead_at = std::numeric_limits<int64_t>::max();
  int64_t after_seq = std::numeric_limits<int64_t>::max();
  if (!cursor.empty() && !ParseDeadCursor(cursor, after_dead_at, after_seq)) {
    return InvalidArgument("bad cursor \"" + cursor + "\"");
  }

  std::lock_guard lock(read_mu_);
  if (closed_.load() || !read_db_) return ClosedStatus();
  ReadTransaction transaction(read_.begin, read_.commit);
  if (!transaction.status().ok()) return Unavailable(path_ + ": " + transaction.status().message());
  DeadListPage page;
  int64_t last_dead_at = 0;
  int64_t last_seq = 0;
  bool more = false;
  {
    sqlite::Query query(read_.list_dead);
    // One row past the page tells whether another page exists.
    query.Bind(1, type).Bind(2, after_dead_at).Bind(3, after_seq).Bind(4, int64_t{limit} + 1);
    for (;;) {
      Result<bool> row = query.Next();
      if (!row.ok()) return Unavailable(path_ + ": " + row.status().message());
      if (!*row) break;
      if (static_cast<int>(page.items.size()) == limit) {
        more = true;
        break;
      }
      page.items.push_back(RowToJob(query));
      last_dead_at = query.Int(kJobColumnCount);
      last_seq = query.Int(kJobColumnCount + 1);
    }
  }
  for (Job& job : page.items) {
    if (Status s = ReadAttempts(job.id, job.attempts); !s.ok()) return s;
  }
  if (more) page.next_cursor = std::to_string(last_dead_at) + "." + std::to_string(last_seq);
  return page;
}

Status SqliteQueue::ApplyRerun(const std::string& id, bool dead_only, int64_t now_ms,
                               Status& outcome, std::string& new_id) {
  Job original;
  {
    sqlite::Query select(write_.select_job);
    select.Bind(1, id);
    Result<bool> row = select.Next();
    if (!row.ok()) return row.status();
    if (!*row) {
      outcome = NotFound(dead_only ? "no dead job " + id : "no job " + id);
      return Status::Ok();
    }
    original = RowToJob(select);
  }
  if (dead_only && original.state != JobState::kDead) {
    outcome = NotFound("no dead job " + id);
    return Status::Ok();
  }
  if (original.state == JobState::kReady || original.state == JobState::kInFlight) {
    outcome = FailedPrecondition("job " + id + " is " + JobStateName(original.state) +
                                 ": it runs already");
    return Status::Ok();
  }
  if (original.state == JobState::kReplayed) {
    outcome = FailedPrecondition("job " + id + " was replayed already, as " +
                                 original.replayed_as);
    return Status::Ok();
  }
  if (original.payload_pruned) {
    outcome = FailedPrecondition("job " + id + " no longer has its payload (retention_payload)");
    return Status::Ok();
  }
  NewJob job;
  job.id = NewJobId(now_ms);
  job.type = original.type;
  job.source = original.source;
  job.payload_json = std::move(original.payload_json);
  job.headers_json = std::move(original.headers_json);
  job.traceparent = original.traceparent;
  job.ordering_key = original.ordering_key;
  job.key_limit = original.key_limit;
  job.priority = original.priority;
  job.search_keys = IngressSearchKeys(original.search_keys);
  job.parent_id = original.parent_id;
  job.replay_of = id;
  job.max_attempts = original.max_attempts;
  job.enqueued_at_ms = now_ms;
  job.run_at_ms = now_ms;
  EnqueueResult stored;
  if (Status s = InsertJob(job, now_ms, /*check_depth=*/false, stored); !s.ok()) return s;
  if (!stored.status.ok()) {
    outcome = stored.status;
    return Status::Ok();
  }
  --batch_throughput_[job.type].arrived;  // a replay is not an arrival (TypeThroughput)
  if (original.state == JobState::kDead) {
    sqlite::Query mark(write_.mark_replayed);
    mark.Bind(1, id).Bind(2, job.id).Bind(3, now_ms);
    if (Status s = mark.Run(); !s.ok()) return s;
    CountState(original.type, kStateReplayed, 1);
  }
  new_id = job.id;
  outcome = Status::Ok();
  return Status::Ok();
}

Result<std::string> SqliteQueue::Rerun(const std::string& id) {
  Status outcome;
  std::string new_id;
  Status committed = RunAdminWrite([&](int64_t now_ms) {
    return ApplyRerun(id, /*dead_only=*/false, now_ms, outcome, new_id);
  });
  if (!committed.ok()) return committed;
  if (!outcome.ok()) return outcome;
  return new_id;
}

Status SqliteQueue::Replay(const std::string& id) {
  Status outcome;
  std::string new_id;
  Status committed = RunAdminWrite([&](int64_t now_ms) {
    return ApplyRerun(id, /*dead_only=*/true, now_ms, outcome, new_id);
  });
  return committed.ok() ? outcome : committed;
}

Result<int64_t> SqliteQueue::ReplayAll(const std::string& type,
                                       const std::function<void(int64_t)>& progress) {
  int64_t total = 0;
  for (;;) {
    int64_t replayed = 0;
    int64_t found = 0;
    Status committed = RunAdminWrite([&](int64_t now_ms) -> Status {
      std::vector<std::string> ids;
      {
        sqlite::Query chunk(write_.dead_chunk);
        chunk.Bind(1, type).Bind(2, kAdminChunk);
        for (;;) {
          Result<bool> row = chunk.Next();
          if (!row.ok()) return row.status();
          if (!*row) break;
          ids.push_back(chunk.Text(0));
        }
      }
      found = static_cast<int64_t>(ids.size());
      for (const std::string& id : ids) {
        Status outcome;
        std::string new_id;
        if (Status s = ApplyRerun(id, /*dead_only=*/true, now_ms, outcome, new_id); !s.ok()) {
          return s;
        }
        if (outcome.ok()) ++replayed;
      }
      return Status::Ok();
    });
    if (!committed.ok()) return committed;
    total += replayed;
    if (replayed > 0 && progress) progress(total);
    if (found < kAdminChunk || replayed == 0) return total;
  }
}

Status SqliteQueue::RunNow(const std::string& id) {
  Status outcome;
  Status committed = RunAdminWrite([&](int64_t now_ms) -> Status {
    JobState state;
    {
      sqlite::Query select(write_.select_job);
      select.Bind(1, id);
      Result<bool> row = select.Next();
      if (!row.ok()) return row.status();
      if (!*row) {
        outcome = NotFound("no job " + id);
        return Status::Ok();
      }
      state = StateFromColumn(select.Int(6));
    }
    if (state != JobState::kReady) {
      outcome = FailedPrecondition("job " + id + " is " + JobStateName(state) + ", not waiting");
      return Status::Ok();
    }
    sqlite::Query update(write_.run_now);
    update.Bind(1, id).Bind(2, now_ms);
    if (Status s = update.Run(); !s.ok()) return s;
    if (update.Changes() > 0) wake_after_commit_ = true;
    outcome = Status::Ok();
    return Status::Ok();
  });
  return committed.ok() ? outcome : committed;
}

Result<bool> SqliteQueue::CancelWaiting(const std::string& id, int64_t now_ms,
                                        const std::string& reason) {
  sqlite::Query cancel(write_.cancel_job);
  cancel.Bind(1, id).Bind(2, now_ms).Bind(3, reason);
  Result<bool> row = cancel.Next();
  if (!row.ok()) return row.status();
  if (!*row) return false;
  CountState(cancel.Text(0), kStateCancelled, 1);
  if (Status s = LeaveKeyLine(cancel.Text(0), cancel.Text(1), cancel.Int(2) != 0, now_ms);
      !s.ok()) {
    return s;
  }
  --depth_;
  return true;
}

Status SqliteQueue::Cancel(const std::string& id) {
  Status outcome;
  Status committed = RunAdminWrite([&](int64_t now_ms) -> Status {
    Result<bool> cancelled = CancelWaiting(id, now_ms, "");
    if (!cancelled.ok()) return cancelled.status();
    if (*cancelled) {
      outcome = Status::Ok();
      return Status::Ok();
    }
    sqlite::Query select(write_.select_job);
    select.Bind(1, id);
    Result<bool> found = select.Next();
    if (!found.ok()) return found.status();
    if (!*found) {
      outcome = NotFound("no job " + id);
    } else {
      outcome = FailedPrecondition("job " + id + " is " +
                                   JobStateName(StateFromColumn(select.Int(6))) +
                                   "; only a waiting job can be cancelled");
    }
    return Status::Ok();
  });
  return committed.ok() ? outcome : committed;
}

Status SqliteQueue::SetPaused(const std::string& type, bool paused) {
  if (type.empty()) return InvalidArgument("a job type is needed");
  return RunAdminWrite([&](int64_t) -> Status {
    sqlite::Query change(paused ? write_.pause : write_.resume);
    change.Bind(1, type);
    Status s = change.Run();
    if (s.ok() && !paused) wake_after_commit_ = true;
    return s;
  });
}

Status SqliteQueue::AppendAudit(const AuditEntry& entry) {
  return RunAdminWrite([&](int64_t now_ms) -> Status {
    sqlite::Query insert(write_.insert_audit);
    insert.Bind(1, entry.at_ms > 0 ? entry.at_ms : now_ms)
        .Bind(2, entry.actor)
        .Bind(3, entry.action)
        .Bind(4, entry.target)
        .Bind(5, entry.count)
        .Bind(6, entry.detail_json);
    return insert.Run();
  });
}

Result<AuditPage> SqliteQueue::ListAudit(int limit, const std::string& cursor) {
  if (limit <= 0) return InvalidArgument("limit must be positive");
  limit = std::min(limit, kMaxDeadPage);
  int64_t before = std::numeric_limits<int64_t>::max();
  if (!cursor.empty() && !ParseInt64(cursor, before)) {
    return InvalidArgument("bad cursor \"" + cursor + "\"");
  }
  std::lock_guard lock(read_mu_);
  if (closed_.load() || !read_db_) return ClosedStatus();
  AuditPage page;
  sqlite::Query query(read_.list_audit);
  query.Bind(1, before).Bind(2, int64_t{limit} + 1);
  for (;;) {
    Result<bool> row = query.Next();
    if (!row.ok()) return Unavailable(path_ + ": " + row.status().message());
    if (!*row) break;
    if (static_cast<int>(page.items.size()) == limit) {
      page.next_cursor = std::to_string(page.items.back().seq);
      break;
    }
    AuditEntry entry;
    entry.seq = query.Int(0);
    entry.at_ms = query.Int(1);
    entry.actor = query.Text(2);
    entry.action = query.Text(3);
    entry.target = query.Text(4);
    entry.count = query.Int(5);
    entry.detail_json = query.Text(6);
    page.items.push_back(std::move(entry));
  }
  return page;
}

Result<std::vector<HistoryBucket>> SqliteQueue::History(int64_t from_ms, int64_t bucket_ms,
                                                        int buckets) {
  if (bucket_ms <= 0 || buckets <= 0 || buckets > kMaxHistoryBuckets) {
    return InvalidArgument("history: bucket_ms must be positive and buckets 1.." +
                           std::to_string(kMaxHistoryBuckets));
  }
  std::vector<HistoryBucket> out(static_cast<size_t>(buckets));
  for (int i = 0; i < buckets; ++i) out[static_cast<size_t>(i)].start_ms = from_ms + i * bucket_ms;
  const int64_t to_ms = from_ms + buckets * bucket_ms;
  std::lock_guard lock(read_mu_);
  if (closed_.load() || !read_db_) return ClosedStatus();
  for (sqlite::Statement* statement : {&read_.history_finished, &read_.history_dead}) {
    sqlite::Query query(*statement);
    query.Bind(1, from_ms).Bind(2, bucket_ms).Bind(3, to_ms);
    for (;;) {
      Result<bool> row = query.Next();
      if (!row.ok()) return Unavailable(path_ + ": " + row.status().message());
      if (!*row) break;
      const int64_t index = query.Int(0);
      if (index < 0 || index >= buckets) continue;
      HistoryBucket& bucket = out[static_cast<size_t>(index)];
      (statement == &read_.history_finished ? bucket.finished : bucket.dead) = query.Int(1);
    }
  }
  return out;
}

Result<JobPage> SqliteQueue::ListJobs(const JobFilter& filter, int limit,
                                      const std::string& cursor) {
  if (limit <= 0) return InvalidArgument("limit must be positive");
  limit = std::min(limit, kMaxDeadPage);
  int64_t before = std::numeric_limits<int64_t>::max();
  if (!cursor.empty() && !ParseInt64(cursor, before)) {
    return InvalidArgument("bad cursor \"" + cursor + "\"");
  }
  const bool delayed = filter.state == "delayed";
  JobState state = JobState::kReady;
  if (!filter.state.empty() && !delayed && !ParseJobState(filter.state, state)) {
    return InvalidArgument("unknown state \"" + filter.state + "\"");
  }
  const bool by_state = !filter.state.empty();
  const int64_t state_column = StateColumn(state);

  std::lock_guard lock(read_mu_);
  if (closed_.load() || !read_db_) return ClosedStatus();
  ReadTransaction transaction(read_.begin, read_.commit);
  if (!transaction.status().ok()) return Unavailable(path_ + ": " + transaction.status().message());
  const int64_t now_ms = clock_.NowMs();
  auto unavailable = [&](const Status& s) { return Unavailable(path_ + ": " + s.message()); };

  // The driving index: the key's rows, the state's, or every job; the rest of the filter
  // is checked row by row, at most kListScanBudget rows per page.
  sqlite::Statement& scan = !filter.key.empty() ? read_.scan_key
                            : by_state          ? read_.scan_state
                                                : read_.scan_all;
  std::vector<int64_t> matches;
  int64_t last_scanned = 0;
  bool exhausted = true;
  {
    sqlite::Query query(scan);
    if (!filter.key.empty()) {
      query.Bind(1, filter.key);
    } else {
      query.Bind(1, state_column);
    }
    query.Bind(2, filter.q).Bind(3, before);
    for (int scanned = 0;; ++scanned) {
      if (scanned == kListScanBudget || static_cast<int>(matches.size()) == limit) {
        exhausted = false;
        break;
      }
      Result<bool> row = query.Next();
      if (!row.ok()) return unavailable(row.status());
      if (!*row) break;
      last_scanned = query.Int(0);
      const int64_t row_state = query.Int(1);
      const int64_t run_at = query.Int(2);
      const int64_t enqueued_at = query.Int(5);
      if (by_state && (row_state != state_column || (delayed && run_at <= now_ms))) continue;
      if (!filter.type.empty() && query.Text(3) != filter.type) continue;
      if (!filter.source.empty() && query.Text(4) != filter.source) continue;
      if (filter.from_ms > 0 && enqueued_at < filter.from_ms) continue;
      if (filter.to_ms > 0 && enqueued_at >= filter.to_ms) continue;
      if (query.Int(6) == 0) continue;  // q not in the payload
      matches.push_back(last_scanned);
    }
  }
  JobPage page;
  for (int64_t seq : matches) {
    sqlite::Query get(read_.get_job_by_seq);
    get.Bind(1, seq);
    Result<bool> row = get.Next();
    if (!row.ok()) return unavailable(row.status());
    if (*row) page.items.push_back(RowToJob(get));
  }
  if (!exhausted) page.next_cursor = std::to_string(last_scanned);
  if (cursor.empty()) {
    sqlite::Query count(!filter.key.empty() ? read_.count_key
                        : by_state          ? read_.count_state
                                            : read_.count_all);
    if (!filter.key.empty()) {
      count.Bind(1, filter.key);
    } else if (by_state) {
      count.Bind(1, state_column);
    }
    Result<bool> row = count.Next();
    if (!row.ok()) return unavailable(row.status());
    page.total_estimate = *row ? count.Int(0) : 0;
  }
  return page;
}

Status SqliteQueue::Purge(const std::string& id) {
  bool found = false;
  Status committed = RunAdminWrite([&](int64_t) -> Status {
    int64_t seq = 0;
    std::string search_keys;
    {
      sqlite::Query purge(write_.purge_job);
      purge.Bind(1, id);
      Result<bool> row = purge.Next();
      if (!row.ok()) return row.status();
      found = *row;
      if (!found) return Status::Ok();
      seq = purge.Int(1);
      search_keys = purge.Text(2);
    }
    return DeleteJobRow(seq, id, search_keys);
  });
  if (!committed.ok()) return committed;
  if (!found) return NotFound("no dead job " + id);
  return Status::Ok();
}

Result<int64_t> SqliteQueue::PurgeAll(const std::string& type) {
  int64_t total = 0;
  for (;;) {
    int64_t purged = 0;
    Status committed = RunAdminWrite([&](int64_t) -> Status {
      struct Row {
        std::string id;
        int64_t seq;
        std::string search_keys;
      };
      std::vector<Row> rows;
      {
        sqlite::Query purge(write_.purge_chunk);
        purge.Bind(1, type).Bind(2, kAdminChunk);
        for (;;) {
          Result<bool> row = purge.Next();
          if (!row.ok()) return row.status();
          if (!*row) break;
          rows.push_back({purge.Text(0), purge.Int(1), purge.Text(2)});
        }
      }
      for (const Row& row : rows) {
        if (Status s = DeleteJobRow(row.seq, row.id, row.search_keys); !s.ok()) return s;
      }
      purged = static_cast<int64_t>(rows.size());
      return Status::Ok();
    });
    if (!committed.ok()) return committed;
    total += purged;
    if (purged < kAdminChunk) return total;
  }
}

Result<std::unique_ptr<Queue>> OpenSqliteQueue(const QueueConfig& config, Clock& clock,
                                               const SqliteQueueOptions& options) {
  Result<std::unique_ptr<SqliteQueue>> queue = SqliteQueue::Open(config, clock, options);
  if (!queue.ok()) return queue.status();
  return std::unique_ptr<Queue>(std::move(*queue));
}

}  // namespace firebreak

#undef FIREBREAK_JOB_COLUMNS
