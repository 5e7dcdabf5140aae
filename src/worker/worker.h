// The worker: claims jobs from the queue within per-type `concurrency` and the
// global `max_in_flight`, runs each attempt through its handler under a hard
// timeout, and records the outcome — done, retry with backoff, or dead-letter.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "common/clock.h"
#include "common/status.h"
#include "config/config.h"
#include "queue/queue.h"
#include "telemetry/metrics.h"

namespace firebreak {

namespace egress {
class Egress;
}
class RunningJobs;

// What the worker shares with the rest of the process. Null members are optional.
struct WorkerContext {
  egress::Egress* egress = nullptr;  // runs action jobs; required when integrations exist
  RunningJobs* running = nullptr;    // told about every attempt (the sidecar reads it)
  std::string sidecar_url;           // FIREBREAK_SIDECAR for command handlers
};

class Worker {
 public:
  // `queue`, `metrics`, `clock` and the context's pointers must outlive the worker.
  Worker(const Config& config, Queue& queue, Metrics& metrics, Clock& clock,
         WorkerContext context = {});
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // Creates the handlers (one action type per integration too) and starts the worker
  // thread. kInvalidArgument if a handler cannot be built from its config.
  Status Start();
  // Thread-safe: new jobs may be runnable; claim now instead of at the next poll.
  void Wake();
  // Graceful stop (DESIGN §1): stop claiming, give in-flight attempts up to `grace`,
  // then kill what still runs and put those jobs back in the queue. Blocks.
  void Stop(std::chrono::milliseconds grace);

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace firebreak
