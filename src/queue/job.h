// The job record shared by ingress, queue backends, workers and the CLI.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace firebreak {

enum class JobState {
  kReady,     // waiting; runnable once run_at_ms has passed (delayed until then)
  kInFlight,  // claimed by a worker, which holds a lease until lease_until_ms
  kDead,      // in the dead-letter queue
};

const char* JobStateName(JobState state);

// One attempt's outcome, kept for the dead-letter queue and `dlq show`.
struct AttemptRecord {
  int attempt = 0;
  int64_t started_at_ms = 0;
  int64_t duration_ms = 0;
  std::string outcome;  // "failed" | "timed_out" | "lease_expired" | "rejected" (don't retry)
  std::string error;
};

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
  std::string ordering_key;  // "" = unordered; else FIFO with one in flight per key
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
  JobState state = JobState::kReady;
  int attempt = 0;  // attempts started so far (the claimed attempt's number once claimed)
  int max_attempts = 5;
  int64_t enqueued_at_ms = 0;
  int64_t run_at_ms = 0;
  int64_t lease_until_ms = 0;
  std::vector<AttemptRecord> attempts;  // filled by GetJob and for dead jobs; empty on Claim
};

}  // namespace firebreak
