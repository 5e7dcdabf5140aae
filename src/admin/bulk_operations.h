// Replay or delete dead jobs by filter (DESIGN §7: POST /dead/replay, DELETE /dead, and
// `firebreak dead replay|delete --filter`), and the dead-letter queue grouped by error.
//
// A bulk operation pages through the dead jobs the filter matches, newest first, and
// replays (Queue::Replay: a new job, attempt 1, linked to the original) or deletes each,
// at most `rate` jobs a second; it stops between two jobs when cancelled. A dry run goes
// through the same pages and only counts, so without other changes in between its count
// is the number a real run would touch. The CLI runs one in the foreground (RunBulk);
// the admin API runs them on threads of their own (Operations) and keeps their progress
// in memory: an operation belongs to the process that started it.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "admin/job_view.h"
#include "common/clock.h"
#include "common/status.h"
#include "queue/queue.h"

namespace firebreak {

enum class BulkAction { kReplay, kDelete };
const char* BulkActionName(BulkAction action);  // "replay" | "delete"

struct BulkRequest {
  BulkAction action = BulkAction::kReplay;
  DeadFilter filter;
  bool dry_run = false;
  double rate_per_s = 0;  // jobs per second; 0 = as fast as the store takes them
  std::string actor;      // for the audit log
};

struct BulkProgress {
  int64_t matched = 0;  // dead jobs the filter matched so far
  int64_t done = 0;     // replayed or deleted (0 for a dry run)
  int64_t failed = 0;   // matched but gone or changed meanwhile, or the store refused
  int64_t scanned = 0;  // dead jobs looked at
};

// Runs `request` on the caller's thread until done or `cancel` is set. `progress` is
// called after every page and every job changed. An error reading the store ends it with that status (the
// progress so far stays in `progress_out`).
Status RunBulk(Queue& queue, const BulkRequest& request, const std::atomic<bool>& cancel,
               const std::function<void(const BulkProgress&)>& progress,
               BulkProgress& progress_out);

// Writes the audit entry of a bulk operation that ended in `state` (a dry run changes
// nothing and is not audited by its callers). `target`: the operation id, or "cli".
void AuditBulk(Queue& queue, const BulkRequest& request, const BulkProgress& progress,
               const std::string& state, const std::string& target);

// One group of GET /dead?group=fingerprint.
struct DeadGroup {
  std::string fingerprint;
  std::string sample_error;   // the newest job's last error
  std::string sample_job_id;  // the newest job
  int64_t count = 0;
  int64_t newest_at_ms = 0;
  int64_t oldest_at_ms = 0;
  std::map<std::string, int64_t> types;
};
// The newest `max_jobs` dead jobs matching `filter`, grouped, largest group first;
// `scanned` says how many were looked at (== max_jobs: there may be more).
Status GroupDead(Queue& queue, const DeadFilter& filter, int64_t max_jobs,
                 std::vector<DeadGroup>& groups, int64_t& scanned);

// What GET /operations/{id} shows.
struct OperationView {
  std::string id;
  BulkRequest request;
  std::string state;  // "running" | "succeeded" | "cancelled" | "failed"
  std::string error;
  BulkProgress progress;
  int64_t started_at_ms = 0;
  int64_t finished_at_ms = 0;
};
nlohmann::json OperationJson(const OperationView& view);

// The admin API's background operations. Each runs on its own thread; a finished one
// is kept for GET /operations (the newest 100). Every operation that changed anything
// (not a dry run) writes an audit entry when it ends: actor, action, filter, count.
class Operations {
 public:
  Operations(Queue& queue, const Clock& clock);
  ~Operations();  // cancels what runs and waits for it
  Operations(const Operations&) = delete;
  Operations& operator=(const Operations&) = delete;

  // Starts `request`; returns its view (state "running"). kResourceExhausted while
  // kMaxRunning operations run.
  Result<OperationView> Start(BulkRequest request);
  std::optional<OperationView> Get(const std::string& id) const;
  std::vector<OperationView> List() const;  // newest first
  // Asks a running operation to stop; false if there is no such operation. A finished
  // one is left as it is (true).
  bool Cancel(const std::string& id);

  static constexpr int kMaxRunning = 4;
  static constexpr size_t kKeepFinished = 100;

 private:
  struct Running;
  void Run(std::shared_ptr<Running> op);

  Queue& queue_;
  const Clock& clock_;
  mutable std::mutex mu_;
  std::vector<std::shared_ptr<Running>> ops_;  // oldest first; guarded by mu_
};

}  // namespace firebreak
