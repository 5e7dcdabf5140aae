// The queue's gauges on /metrics: depth per job type and state, durability, writable.
// Depth comes from the queue backend itself (other processes change the queue too)
// through Stats(), which may block on the store, so it is never read on the thread that
// asks: a thread of this object reads it, at most once a second however many scrapers
// ask, and a scrape waits for it only briefly (net::AwaitWithin) — a hung store leaves
// the last values in place and costs a scrape a fraction of a second, not an I/O thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "queue/queue.h"
#include "telemetry/metrics.h"

namespace firebreak {

// Thread-safe. `queue` and `metrics` must outlive it.
class QueueGauges {
 public:
  // How long a scrape waits for fresh depth values before it is served the last ones.
  static constexpr std::chrono::milliseconds kScrapeWait{250};

  QueueGauges(Queue& queue, Metrics& metrics) : queue_(queue), metrics_(metrics) {}
  // Stops the reading thread (after a Stats() in progress returns); callbacks still
  // waiting are dropped, not run. Destroy it before the executors its callbacks post to.
  ~QueueGauges();
  QueueGauges(const QueueGauges&) = delete;
  QueueGauges& operator=(const QueueGauges&) = delete;

  // Never blocks. Sets the writable and durability gauges now (cached state the queue
  // publishes) and has the depth gauges read on this object's thread unless they were
  // read less than a second ago; `done` runs (on that thread, or inline when the values
  // are fresh) once they are. While a read hangs, `done` of later calls waits for it.
  void Refresh(std::function<void()> done);

 private:
  void Run();
  void ReadDepth();  // blocking Stats()

  Queue& queue_;
  Metrics& metrics_;

  std::mutex mu_;
  std::condition_variable wake_;
  std::vector<std::function<void()>> waiting_;         // guarded by mu_
  std::chrono::steady_clock::time_point last_read_{};  // guarded by mu_
  bool stop_ = false;                                  // guarded by mu_
  std::thread thread_;                                 // started by the first Refresh
  std::set<std::string> types_seen_;                   // the reading thread's
};

}  // namespace firebreak
