// Batching (issue 17): `batch = { max, wait }` on a [[jobs]] type hands its handler up
// to `max` jobs in one run. The worker claims jobs one by one through the Queue API as
// for any type (so many workers on one queue, and both backends, work unchanged), holds
// the claimed ones in memory while a batch fills, and starts a run when `max` are held
// or the oldest has waited `wait`. Design note: docs/batching.md.
//
// These are the pure parts, with time passed in: what to claim, when a batch is due,
// and the envelope. Not thread-safe (the worker's io thread owns them).
#pragma once

#include <chrono>
#include <cstddef>
#include <deque>
#include <optional>
#include <string>
#include <vector>

#include "config/config.h"
#include "queue/job.h"

namespace firebreak {

// How much a batched type may claim now.
struct BatchClaim {
  int jobs = 0;      // ClaimSlots.limit (0: claim none)
  int new_runs = 0;  // runs it adds to the worker's max_in_flight count
};

// A batched type's runs are what `concurrency` and `max_in_flight` count: `running`
// runs are started, and the `held` jobs form ceil(held / max) more. The type may hold
// enough jobs to fill every free run, as far as `free_in_flight` (runs max_in_flight
// still allows) goes; a run already forming always fills. So held jobs never wait for
// a free run: every batch they form has one.
BatchClaim PlanBatchClaim(const BatchConfig& batch, int concurrency, int running, size_t held,
                          int free_in_flight);

// ceil(held / max): the runs the held jobs will be.
int FormingRuns(const BatchConfig& batch, size_t held);

// The claimed jobs of one type waiting for their batch, oldest claim first.
class BatchFormer {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;

  explicit BatchFormer(const BatchConfig& batch) : batch_(batch) {}

  void Add(Job job, TimePoint claimed_at);
  size_t held() const { return held_.size(); }

  // The jobs of one run if one is due at `now`: the oldest `max` when that many are
  // held, else every held job once the oldest has waited `wait`; else none.
  std::vector<Job> TakeDue(TimePoint now);
  // When the oldest held job's wait ends; nullopt when none is held.
  std::optional<TimePoint> Deadline() const;
  // Everything held (shutdown: the jobs go back to the queue).
  std::vector<Job> TakeAll();

 private:
  struct Held {
    Job job;
    TimePoint claimed_at;
  };
  std::vector<Job> TakeFront(size_t n);

  const BatchConfig batch_;
  std::deque<Held> held_;
};

// What the handler gets for a batch run (one line of JSON, no newline):
//   {"id":"<first job's id>","type":"<type>","batch":[<each job's envelope>, ...]}
// The envelopes (worker/envelope.h) are spliced in as they are, in batch order.
std::string BuildBatchEnvelope(const std::string& batch_id, const std::string& type,
                               const std::vector<std::string>& envelopes);

}  // namespace firebreak
