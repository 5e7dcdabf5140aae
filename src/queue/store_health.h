// "Would the queue store take a write now?" — answered in one place for both backends
// (issue 13). The backend's own writer thread reports what each round trip to the store
// did; /readyz and the firebreak_queue_writable gauge read the result without ever
// touching the store themselves, so a hung store cannot stall an I/O thread.
//
// What counts:
// - a round trip that committed a change (a job stored, claimed, finished; a probe) is
//   proof the store is writable;
// - a failed write or lost connection (disk full, read-only file, I/O error, Redis
//   MISCONF/OOM, unreachable) makes it not ready, with the store's own reason;
// - a writer thread kept from its work longer than `timeout` (blocked in a round trip,
//   or operations waiting that long: PendingOps::Stalled) makes it not ready at once
//   ("has not answered for 3.2s"): a hung store is seen while it hangs, not after;
// - the writer thread probes with a tiny real write while not ready (every 250 ms, so
//   recovery is seen quickly) and while ready but idle (every 2 s, so a disk that filled
//   up overnight is seen before the next webhook).
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>

#include "common/clock.h"
#include "common/status.h"

namespace firebreak {

struct QueueHealth {
  bool ready = true;
  std::string reason;    // why not ready; "" when ready
  int64_t since_ms = 0;  // wall clock: when the current state began
};

// Thread-safe. The reporting methods are for the backend's writer thread; Get is for
// anyone and never blocks on I/O (it takes a mutex held only for field copies).
class StoreHealth {
 public:
  using SteadyClock = std::chrono::steady_clock;
  static constexpr std::chrono::milliseconds kProbeWhileFailing{250};
  static constexpr std::chrono::milliseconds kProbeWhileIdle{2'000};

  // `store` names the store in reasons and logs ("sqlite var/firebreak.db", "redis
  // 10.0.0.5:6379/0"); `timeout` is queue.timeout; `clock` stamps since_ms.
  StoreHealth(std::string store, std::chrono::milliseconds timeout, const Clock& clock);

  // A round trip committed a change: the store is writable.
  void Wrote();
  // A write or the connection failed; `status` says why (logged on the change only).
  void Failed(const Status& status);
  // Whether the writer thread should send a probe write now; true marks it sent.
  bool TakeProbe();

  // The current answer. `stalled` is how long the store has kept the writer thread
  // (PendingOps::Stalled).
  QueueHealth Get(std::chrono::milliseconds stalled) const;

  const std::string& store() const { return store_; }

 private:
  void SetLocked(bool ready, std::string reason);  // logs a change of state

  const std::string store_;
  const std::chrono::milliseconds timeout_;
  const Clock& clock_;

  mutable std::mutex mu_;
  QueueHealth published_;                 // guarded by mu_
  SteadyClock::time_point last_write_{};  // guarded by mu_
  SteadyClock::time_point last_probe_{};  // guarded by mu_
};

}  // namespace firebreak
