// Enqueues the jobs of [[schedules]] (issue 17, docs/schedules.md). Every process that
// runs workers runs one; each tick is enqueued with the dedupe key
// "schedule:<name>:<tick epoch ms>", so however many processes share the queue, the
// store's atomic dedupe lets exactly one of them store it.
//
// At start, and after the store refused an enqueue, ticks that nobody enqueued are
// handled by the schedule's `missed` policy within `catch_up` (config.h, MissedTicks).
// A tick is enqueued as a job of the schedule's type with its `payload`, the headers
// x-firebreak-schedule and x-firebreak-tick (RFC 3339), and the search key
// "schedule:<name>".
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "config/config.h"
#include "queue/queue.h"
#include "schedule/cron.h"

namespace firebreak {

class Scheduler {
 public:
  // `queue` and `clock` must outlive the scheduler. The schedules were validated with the
  // config; an entry whose expression still fails to parse is logged and left out.
  Scheduler(const Config& config, Queue& queue, const Clock& clock);
  ~Scheduler();  // Stop()
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  void Start();  // no thread without schedules
  void Stop();   // idempotent; an enqueue in progress is awaited (at most queue.timeout)

  // Ticks enqueued by this process (not counting duplicates another process stored).
  int64_t enqueued() const;

 private:
  struct Entry {
    ScheduleConfig config;
    CronSchedule cron;
    JobConfig job;                // its job type's settings (max_attempts, key)
    int64_t next_ms = 0;          // the next tick not yet due
    std::deque<int64_t> pending;  // due ticks not yet stored, oldest first
    bool refusing = false;        // the store refused the last try
  };

  void Run();
  // Ticks of `entry` in (now - catch_up, now] that its policy wants enqueued.
  void AddMissed(Entry& entry, int64_t now_ms) const;
  // Stored or a duplicate: true; the store refused or did not answer: false.
  bool Enqueue(const Entry& entry, int64_t tick_ms);

  Queue& queue_;
  const Clock& clock_;
  const std::chrono::milliseconds enqueue_timeout_;
  std::vector<Entry> entries_;
  std::thread thread_;
  mutable std::mutex mu_;
  std::condition_variable wake_;
  bool stopping_ = false;  // guarded by mu_
  int64_t enqueued_ = 0;   // guarded by mu_
};

}  // namespace firebreak
