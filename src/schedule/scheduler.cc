#include "schedule/scheduler.h"

#include <algorithm>
#include <future>

#include "common/crypto.h"
#include "common/units.h"
#include "ingress/job_key.h"
#include "telemetry/log.h"

namespace firebreak {
namespace {

constexpr size_t kMaxPending = 1000;  // ticks kept per schedule while the store refuses
constexpr int64_t kRetryMs = 1000;    // how soon a refused tick is tried again

}  // namespace

Scheduler::Scheduler(const Config& config, Queue& queue, const Clock& clock)
    : queue_(queue),
      clock_(clock),
      enqueue_timeout_(config.queue.timeout + std::chrono::seconds(1)) {
  for (const ScheduleConfig& schedule : config.schedules) {
    Result<CronSchedule> cron = CronSchedule::Parse(schedule.cron, schedule.time_zone);
    if (!cron.ok()) {
      log::Error("schedule left out", {{"schedule", schedule.name},
                                       {"error", cron.status().message()}});
      continue;
    }
    const JobConfig* job = config.FindJob(schedule.job);
    entries_.push_back(
        {schedule, std::move(cron).value(), job ? *job : JobConfig{}, 0, {}, false});
  }
}

Scheduler::~Scheduler() { Stop(); }

void Scheduler::Start() {
  if (entries_.empty() || thread_.joinable()) return;
  thread_ = std::thread([this] { Run(); });
}

void Scheduler::Stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

int64_t Scheduler::enqueued() const {
  std::lock_guard lock(mu_);
  return enqueued_;
}

void Scheduler::AddMissed(Entry& entry, int64_t now_ms) const {
  if (entry.config.missed == MissedTicks::kSkip) return;
  std::vector<int64_t> ticks;
  int64_t at = now_ms - entry.config.catch_up.count();
  while (std::optional<int64_t> tick = entry.cron.NextAfter(at)) {
    if (*tick > now_ms) break;
    ticks.push_back(*tick);
    if (ticks.size() > kMaxPending) ticks.erase(ticks.begin());
    at = *tick;
  }
  if (entry.config.missed == MissedTicks::kLast && ticks.size() > 1) {
    ticks.erase(ticks.begin(), ticks.end() - 1);
  }
  entry.pending.insert(entry.pending.end(), ticks.begin(), ticks.end());
}

bool Scheduler::Enqueue(const Entry& entry, int64_t tick_ms) {
  const ScheduleConfig& schedule = entry.config;
  NewJob job;
  const int64_t now_ms = clock_.NowMs();
  job.id = NewJobId(now_ms);
  job.type = schedule.job;
  job.source = "schedule:" + schedule.name;
  job.dedupe_keys = {"schedule:" + schedule.name + ":" + std::to_string(tick_ms)};
  job.payload_json = schedule.payload_json;
  job.headers_json = "{\"x-firebreak-schedule\":\"" + schedule.name +
                     "\",\"x-firebreak-tick\":\"" + FormatTimestampMs(tick_ms) + "\"}";
  job.traceparent = NewTraceparent();
  job.search_keys = {"schedule:" + schedule.name};
  job.max_attempts = entry.job.max_attempts;
  job.enqueued_at_ms = now_ms;
  job.run_at_ms = now_ms;
  AssignJobKey(entry.job, job);
  auto done = std::make_shared<std::promise<EnqueueResult>>();
  std::future<EnqueueResult> result = done->get_future();
  queue_.Enqueue(std::move(job), [done](EnqueueResult r) { done->set_value(std::move(r)); });
  if (result.wait_for(enqueue_timeout_) != std::future_status::ready) {
    log::WriteLimited(log::Level::kWarn, "schedule-timeout", "schedule tick not stored in time",
                      {{"schedule", schedule.name}, {"tick", FormatTimestampMs(tick_ms)}});
    return false;
  }
  EnqueueResult r = result.get();
  if (!r.status.ok() || r.outcome == EnqueueOutcome::kOverloaded) {
    log::WriteLimited(log::Level::kWarn, "schedule-refused", "schedule tick refused by the queue",
                      {{"schedule", schedule.name},
                       {"tick", FormatTimestampMs(tick_ms)},
                       {"error", r.status.ok() ? "queue full (max_depth)" : r.status.message()}});
    return false;
  }
  if (r.outcome == EnqueueOutcome::kAccepted) {
    std::lock_guard lock(mu_);
    ++enqueued_;
    log::Info("schedule tick enqueued", {{"schedule", schedule.name},
                                         {"tick", FormatTimestampMs(tick_ms)},
                                         {"job_id", r.job_id}});
  }
  return true;  // stored here, or by another process (a duplicate)
}

void Scheduler::Run() {
  const int64_t start_ms = clock_.NowMs();
  for (Entry& entry : entries_) {
    AddMissed(entry, start_ms);
    entry.next_ms = entry.cron.NextAfter(start_ms).value_or(INT64_MAX);
  }
  for (;;) {
    const int64_t now_ms = clock_.NowMs();
    bool refused = false;
    for (Entry& entry : entries_) {
      while (entry.next_ms <= now_ms) {
        entry.pending.push_back(entry.next_ms);
        entry.next_ms = entry.cron.NextAfter(entry.next_ms).value_or(INT64_MAX);
      }
      // While the store refuses, the ticks coming due are missed ones: keep what the
      // policy runs once it accepts again. On time, every tick is enqueued.
      if (entry.refusing) {
        const int64_t oldest = now_ms - entry.config.catch_up.count();
        while (!entry.pending.empty() &&
               (entry.pending.front() < oldest || entry.pending.size() > kMaxPending ||
                (entry.config.missed != MissedTicks::kAll && entry.pending.size() > 1))) {
          entry.pending.pop_front();
        }
        // skip: only the tick being retried, while it is still (nearly) on time.
        if (entry.config.missed == MissedTicks::kSkip && !entry.pending.empty() &&
            now_ms - entry.pending.front() > 2 * kRetryMs) {
          entry.pending.clear();
        }
      }
      while (!entry.pending.empty()) {
        {
          std::lock_guard lock(mu_);
          if (stopping_) return;
        }
        if (!Enqueue(entry, entry.pending.front())) {
          entry.refusing = true;
          refused = true;
          break;
        }
        entry.refusing = false;
        entry.pending.pop_front();
      }
    }
    int64_t wake_ms = INT64_MAX;
    for (const Entry& entry : entries_) wake_ms = std::min(wake_ms, entry.next_ms);
    if (refused) wake_ms = std::min(wake_ms, clock_.NowMs() + kRetryMs);
    // Wakes at the next tick, and at least once a second (wall-clock steps, Stop).
    const int64_t wait_ms = std::clamp<int64_t>(wake_ms - clock_.NowMs(), 0, 1000);
    std::unique_lock lock(mu_);
    if (wake_.wait_for(lock, std::chrono::milliseconds(wait_ms), [this] { return stopping_; })) {
      return;
    }
  }
}

}  // namespace firebreak
