// The hand-off both queue backends share between their callers (any thread) and their
// one writer thread (the SQLite writer, the Redis dispatcher), which takes what waits in
// batches so many operations share one commit or one round trip.
//
// Operations may carry a deadline: an enqueue has a webhook waiting for it, answered 503
// after queue.timeout anyway. Such an operation is failed instead of run once its
// deadline has passed (its job would be stored after the platform was told it was not),
// and while the store is stalled — the writer thread has been away from Take, blocked in
// one round trip, or an operation has waited, for longer than queue.timeout — new ones
// are refused at once and overdue ones failed by the submitting thread. So a hung store
// costs a webhook at most its deadline, and the waiting list holds at most what arrives
// in one timeout. Operations without a deadline (claims, finishes, admin writes) always
// wait their turn.
#pragma once

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <exception>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/status.h"
#include "telemetry/log.h"

namespace firebreak {

// Runs a queue callback, keeping the writer thread alive if it throws: a throwing
// callback is a bug in the caller, and one bug must not stop every other write.
template <typename Fn>
void RunQueueCallback(Fn&& fn) {
  try {
    fn();
  } catch (const std::exception& e) {
    log::Error("queue callback threw", {{"error", e.what()}});
  } catch (...) {
    log::Error("queue callback threw a non-exception");
  }
}

// The hook an in-process worker sets (Queue::SetWakeup), run after a commit made jobs
// runnable. Thread-safe.
class WakeupHook {
 public:
  void Set(std::function<void()> wakeup) {
    std::lock_guard lock(mu_);
    wakeup_ = std::move(wakeup);
  }
  void Run() {
    std::function<void()> wakeup;
    {
      std::lock_guard lock(mu_);
      wakeup = wakeup_;
    }
    if (wakeup) RunQueueCallback(wakeup);
  }

 private:
  std::mutex mu_;
  std::function<void()> wakeup_;  // guarded by mu_
};

// Thread-safe: Submit, OldestWait and Close from any thread; Take from the writer thread.
template <typename Op>
class PendingOps {
 public:
  using SteadyClock = std::chrono::steady_clock;
  // Answers an operation that will not run. Called without the lock held, on the
  // thread that found it overdue or closed (a queue thread or a submitting thread).
  using Fail = std::function<void(Op&, const Status&)>;

  // `stuck_after` is queue.timeout; `closed` is what operations submitted after Close
  // are answered.
  PendingOps(std::chrono::milliseconds stuck_after, Status closed, Fail fail)
      : stuck_after_(stuck_after), closed_status_(std::move(closed)), fail_(std::move(fail)) {}

  void Submit(Op op, std::optional<SteadyClock::time_point> deadline = std::nullopt) {
    const auto now = SteadyClock::now();
    std::vector<Op> refused;
    Status why;
    {
      std::lock_guard lock(mu_);
      if (closed_) {
        why = closed_status_;
        refused.push_back(std::move(op));
      } else if (auto stalled = StalledLocked(now); deadline && stalled > stuck_after_) {
        why = StuckStatus(stalled);
        TakeOverdueLocked(now, refused);
        refused.push_back(std::move(op));
      } else {
        waiting_.push_back(Entry{std::move(op), now, deadline});
      }
    }
    if (refused.empty()) {
      work_ready_.notify_one();
      return;
    }
    for (Op& r : refused) RunQueueCallback([&] { fail_(r, why); });
  }

  // Waits until an operation arrives, `wake_at` passes or Close is called, then moves up
  // to `max` operations into `batch` (those past their deadline are failed instead).
  // Returns false once closed with nothing left: the writer thread should exit.
  bool Take(std::vector<Op>& batch, size_t max, SteadyClock::time_point wake_at) {
    std::vector<Op> overdue;
    bool keep_running = true;
    {
      std::unique_lock lock(mu_);
      writer_busy_since_.reset();
      if (waiting_.empty() && !closed_) {
        work_ready_.wait_until(lock, wake_at, [&] { return !waiting_.empty() || closed_; });
      }
      keep_running = !(closed_ && waiting_.empty());
      const auto now = SteadyClock::now();
      writer_busy_since_ = now;  // until the writer is back: what it does now may hang
      while (!waiting_.empty() && batch.size() < max) {
        Entry& entry = waiting_.front();
        if (entry.deadline && *entry.deadline <= now) {
          overdue.push_back(std::move(entry.op));
        } else {
          batch.push_back(std::move(entry.op));
        }
        waiting_.pop_front();
      }
    }
    const Status why = Unavailable("timed out waiting for the queue store (queue.timeout " +
                                   std::to_string(stuck_after_.count()) + "ms)");
    for (Op& op : overdue) RunQueueCallback([&] { fail_(op, why); });
    return keep_running;
  }

  // How long the store has kept the writer thread from coming back for work, or the
  // oldest operation waiting, whichever is longer (0 when the writer waits in Take).
  std::chrono::milliseconds Stalled() const {
    std::lock_guard lock(mu_);
    return StalledLocked(SteadyClock::now());
  }

  // Later Submits are answered with the closed status; what waits is still taken.
  void Close() {
    {
      std::lock_guard lock(mu_);
      closed_ = true;
    }
    work_ready_.notify_all();
  }
  // Wakes a writer thread waiting in Take (e.g. to stop it).
  void Notify() { work_ready_.notify_all(); }

 private:
  struct Entry {
    Op op;
    SteadyClock::time_point submitted;
    std::optional<SteadyClock::time_point> deadline;
  };

  Status StuckStatus(SteadyClock::duration waited) const {
    return Unavailable(
        "queue store has not answered for " +
        std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(waited).count()) +
        "ms");
  }

  std::chrono::milliseconds StalledLocked(SteadyClock::time_point now) const {
    SteadyClock::duration stalled{0};
    if (writer_busy_since_) stalled = now - *writer_busy_since_;
    if (!waiting_.empty()) stalled = std::max(stalled, now - waiting_.front().submitted);
    return std::chrono::duration_cast<std::chrono::milliseconds>(stalled);
  }

  // Moves every waiting op whose deadline has passed into `out`.
  void TakeOverdueLocked(SteadyClock::time_point now, std::vector<Op>& out) {
    auto overdue = [now](const Entry& e) { return e.deadline && *e.deadline <= now; };
    for (Entry& entry : waiting_) {
      if (overdue(entry)) out.push_back(std::move(entry.op));
    }
    waiting_.erase(std::remove_if(waiting_.begin(), waiting_.end(), overdue), waiting_.end());
  }

  const std::chrono::milliseconds stuck_after_;
  const Status closed_status_;
  const Fail fail_;

  mutable std::mutex mu_;
  std::condition_variable work_ready_;
  std::deque<Entry> waiting_;  // guarded by mu_
  bool closed_ = false;        // guarded by mu_
  // When the writer thread last left Take (it is working on what it took, or probing);
  // unset while it waits in Take. Guarded by mu_.
  std::optional<SteadyClock::time_point> writer_busy_since_;
};

}  // namespace firebreak
