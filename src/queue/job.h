// The job record shared by ingress, queue backends, workers and the CLI.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace firebreak {

enum class JobState {
  kReady,     // waiting; runnable once run_at_ms has passed (delayed until then)
  kInFlight,  // claimed by a worker, which holds a lease until lease_until_ms
  kDead,      // in the dead-letter queue
  // Finished states: kept as history for queue.retention, then pruned (DESIGN §4).
  kSucceeded,  // a handler succeeded
  kCancelled,  // an operator cancelled it before it ran
  kReplayed,   // was dead; an operator replayed it as a new job (Job::replayed_as)
};

const char* JobStateName(JobState state);
// The state named `name` (JobStateName's words); false for any other word.
bool ParseJobState(std::string_view name, JobState& state);
// True for the states a job never leaves except by being pruned.
bool IsFinished(JobState state);

// One attempt's outcome, kept for the dead-letter queue, `dlq show` and job history.
struct AttemptRecord {
  int attempt = 0;
  int64_t started_at_ms = 0;
  int64_t duration_ms = 0;
  // "succeeded" (kept only with retention) | "failed" | "timed_out" | "lease_expired" |
  // "rejected" (don't retry)
  std::string outcome;
  std::string error;
};

// Priority levels: 0 (the default) to kMaxPriority. A job of priority p is claimed as if
// it had become runnable p x its type's priority_step earlier (ClaimSlots), so higher
// levels go first and a lower one still runs once it has waited that much longer.
inline constexpr int kMaxPriority = 3;

// Ingress keeps a job's search keys within these, whatever its payload holds: at most
// this many keys, each value at most this long (ingress/search_keys.h).
inline constexpr size_t kMaxSearchKeys = 16;
inline constexpr size_t kMaxSearchKeyValueBytes = 200;

// A job as ingress hands it to Queue::Enqueue.
struct NewJob {
  std::string id;    // ULID made by the caller (NewJobId)
  std::string type;  // [[jobs]] type
  std::string source;
  // Keys that make this job a duplicate if any of them was seen within dedupe_ttl.
  // The first one is the job's dedupe_key in the envelope. Empty: never a duplicate.
  std::vector<std::string> dedupe_keys;
  std::string payload_json;  // the platform body as a JSON value (form bodies already converted)
  std::string headers_json;  // JSON object of event-describing headers (never secrets)
  std::string traceparent;
  // The job's flow key ([[jobs]] `key` / `ordering`): "" = none. At most key_limit jobs
  // of one type and key are runnable or in flight at once; the rest wait in arrival
  // order (FIFO per key when key_limit is 1). Keys are per type.
  std::string ordering_key;
  int key_limit = 1;  // concurrency_per_key; used only with an ordering_key
  int priority = 0;   // 0..kMaxPriority
  // [[jobs]] debounce: storing this job cancels the waiting job of its type that holds
  // the same debounce key ("superseded by <id>"); the caller delays run_at by the period.
  std::string debounce_key;
  // What operators find the job by (Queue::ListJobs with JobFilter::key), each
  // "name:value" (e.g. "slack.user:U024BE7LH"); ingress fills them per source kind.
  // Backends add "trace:<trace id>", "parent:<parent_id>" and "replay_of:<replay_of>".
  std::vector<std::string> search_keys;
  std::string parent_id;  // the job whose success stored this one (an action), or ""
  std::string replay_of;  // the dead or finished job this one replays, or ""
  int max_attempts = 5;
  int64_t enqueued_at_ms = 0;
  int64_t run_at_ms = 0;  // > enqueued_at_ms for a delayed job
};

// A stored job, as a worker claims it or a tool reads it.
struct Job {
  std::string id;
  std::string type;
  std::string source;
  std::string dedupe_key;  // "" when the job has none
  std::string payload_json;
  std::string headers_json;
  std::string traceparent;
  std::string ordering_key;
  int key_limit = 1;
  int priority = 0;
  std::vector<std::string> search_keys;  // as enqueued (NewJob::search_keys)
  std::string parent_id;
  std::string replay_of;
  std::string replayed_as;  // kReplayed: the new job's id
  JobState state = JobState::kReady;
  int attempt = 0;  // attempts started so far (the claimed attempt's number once claimed)
  int max_attempts = 5;
  int64_t enqueued_at_ms = 0;
  int64_t run_at_ms = 0;
  int64_t lease_until_ms = 0;
  // When it reached kDead or a finished state (retention counts from here), else 0.
  int64_t finished_at_ms = 0;
  // The last attempt's error, kept on the job for dead-letter grouping (ErrorFingerprint).
  std::string last_error;
  // queue.retention_payload passed: payload_json is "null" and headers_json "{}".
  bool payload_pruned = false;
  std::vector<AttemptRecord> attempts;  // filled by GetJob and for dead jobs; empty on Claim
};

}  // namespace firebreak
