#include "admin/bulk_operations.h"

#include <algorithm>
#include <chrono>

#include "admin/job_actions.h"
#include "common/crypto.h"
#include "common/units.h"
#include "telemetry/log.h"

namespace firebreak {
namespace {

constexpr int kPage = 200;

// Paces a loop to `rate` items a second; sleeps in short slices so a cancel is seen.
class Pacer {
 public:
  explicit Pacer(double rate) : rate_(rate), next_(std::chrono::steady_clock::now()) {}
  // Waits for the next item's turn; false when cancelled meanwhile.
  bool Wait(const std::atomic<bool>& cancel) {
    if (rate_ <= 0) return !cancel.load();
    next_ += std::chrono::duration_cast<std::chrono::steady_clock::duration>(
        std::chrono::duration<double>(1.0 / rate_));
    for (;;) {
      if (cancel.load()) return false;
      auto now = std::chrono::steady_clock::now();
      if (now >= next_) return true;
      std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(
          next_ - now, std::chrono::milliseconds(50)));
    }
  }

 private:
  double rate_;
  std::chrono::steady_clock::time_point next_;
};

// Pages through the dead jobs matching `filter`, newest first, calling `each` for every
// match; `each` returns false to stop. `page_done` after every page.
Status ForEachDead(Queue& queue, const DeadFilter& filter, const std::atomic<bool>& cancel,
                   const std::function<bool(const Job&)>& each,
                   const std::function<void(int64_t scanned)>& page_done) {
  std::string cursor;
  int64_t scanned = 0;
  for (;;) {
    if (cancel.load()) return Status::Ok();
    Result<JobPage> page = queue.ListJobs(filter.jobs, kPage, cursor);
    if (!page.ok()) return page.status();
    for (const Job& job : page->items) {
      ++scanned;
      if (!filter.fingerprint.empty() && ErrorFingerprint(job.last_error) != filter.fingerprint) {
        continue;
      }
      if (!each(job)) return Status::Ok();
    }
    if (page_done) page_done(scanned);
    if (page->next_cursor.empty()) return Status::Ok();
    cursor = page->next_cursor;
  }
}

}  // namespace

const char* BulkActionName(BulkAction action) {
  return action == BulkAction::kReplay ? "replay" : "delete";
}

Status RunBulk(Queue& queue, const BulkRequest& request, const std::atomic<bool>& cancel,
               const std::function<void(const BulkProgress&)>& progress,
               BulkProgress& out) {
  DeadFilter filter = request.filter;
  filter.jobs.state = "dead";
  Pacer pacer(request.dry_run ? 0 : request.rate_per_s);
  Status failure;
  Status scan = ForEachDead(
      queue, filter, cancel,
      [&](const Job& job) {
        ++out.matched;
        if (request.dry_run) return true;
        if (!pacer.Wait(cancel)) return false;
        Status st = request.action == BulkAction::kReplay ? queue.Replay(job.id)
                                                          : queue.Purge(job.id);
        if (st.ok()) {
          ++out.done;
          if (progress) progress(out);
        } else {
          ++out.failed;  // replayed or deleted by someone else meanwhile
          if (st.code() == StatusCode::kUnavailable) {
            failure = st;  // the store is down: stop rather than fail every job
            return false;
          }
        }
        return true;
      },
      [&](int64_t scanned) {
        out.scanned = scanned;
        if (progress) progress(out);
      });
  if (!scan.ok()) return scan;
  if (progress) progress(out);
  return failure;
}

void AuditBulk(Queue& queue, const BulkRequest& request, const BulkProgress& progress,
               const std::string& state, const std::string& target) {
  AuditChange(queue, request.actor, std::string("dead.") + BulkActionName(request.action), target,
              progress.done,
              nlohmann::json{{"filter", DeadFilterJson(request.filter)},
                             {"state", state},
                             {"matched", progress.matched},
                             {"failed", progress.failed},
                             {"rate_per_s", request.rate_per_s}}
                  .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
}

Status GroupDead(Queue& queue, const DeadFilter& filter, int64_t max_jobs,
                 std::vector<DeadGroup>& groups, int64_t& scanned) {
  std::map<std::string, DeadGroup> by_fingerprint;
  std::atomic<bool> never{false};
  DeadFilter dead = filter;
  dead.jobs.state = "dead";
  scanned = 0;
  Status st = ForEachDead(
      queue, dead, never,
      [&](const Job& job) {
        const std::string fingerprint = ErrorFingerprint(job.last_error);
        DeadGroup& group = by_fingerprint[fingerprint];
        if (group.count == 0) {
          group.fingerprint = fingerprint;
          group.sample_error = job.last_error;
          group.sample_job_id = job.id;
          group.newest_at_ms = job.finished_at_ms;
        }
        ++group.count;
        group.oldest_at_ms = job.finished_at_ms;
        ++group.types[job.type];
        return ++scanned < max_jobs;
      },
      nullptr);
  if (!st.ok()) return st;
  groups.clear();
  for (auto& [fingerprint, group] : by_fingerprint) groups.push_back(std::move(group));
  std::sort(groups.begin(), groups.end(), [](const DeadGroup& a, const DeadGroup& b) {
    return a.count != b.count ? a.count > b.count : a.newest_at_ms > b.newest_at_ms;
  });
  return Status::Ok();
}

nlohmann::json OperationJson(const OperationView& view) {
  const BulkRequest& r = view.request;
  nlohmann::json out = {
      {"id", view.id},
      {"action", BulkActionName(r.action)},
      {"state", view.state},
      {"dry_run", r.dry_run},
      {"filter", DeadFilterJson(r.filter)},
      {"rate_per_s", r.rate_per_s},
      {"actor", r.actor},
      {"matched", view.progress.matched},
      {"done", view.progress.done},
      {"failed", view.progress.failed},
      {"scanned", view.progress.scanned},
      {"started_at", FormatTimestampMs(view.started_at_ms)},
      {"finished_at", view.finished_at_ms > 0 ? nlohmann::json(FormatTimestampMs(view.finished_at_ms))
                                              : nlohmann::json(nullptr)},
  };
  if (!view.error.empty()) out["error"] = view.error;
  return out;
}

struct Operations::Running {
  mutable std::mutex mu;
  OperationView view;  // guarded by mu
  std::atomic<bool> cancel{false};
  std::atomic<bool> finished{false};
  std::thread thread;  // joined by Start (once finished) or the destructor
};

Operations::Operations(Queue& queue, const Clock& clock) : queue_(queue), clock_(clock) {}

Operations::~Operations() {
  std::lock_guard lock(mu_);  // Run never takes mu_: joining under it cannot deadlock
  for (auto& op : ops_) op->cancel.store(true);
  for (auto& op : ops_) {
    if (op->thread.joinable()) op->thread.join();
  }
}

Result<OperationView> Operations::Start(BulkRequest request) {
  std::lock_guard lock(mu_);
  int running = 0;
  for (const auto& op : ops_) running += op->finished.load() ? 0 : 1;
  if (running >= kMaxRunning) {
    return Status(StatusCode::kResourceExhausted,
                  std::to_string(kMaxRunning) + " operations are running; wait or cancel one");
  }
  auto op = std::make_shared<Running>();
  op->view.id = "op_" + NewJobId(clock_.NowMs());
  op->view.request = std::move(request);
  op->view.request.filter.jobs.state = "dead";
  op->view.state = "running";
  op->view.started_at_ms = clock_.NowMs();
  OperationView view = op->view;
  ops_.push_back(op);
  // Forget the oldest finished ones beyond what is kept.
  size_t finished = 0;
  for (const auto& o : ops_) finished += o->finished.load() ? 1 : 0;
  for (auto it = ops_.begin(); finished > kKeepFinished && it != ops_.end();) {
    if ((*it)->finished.load()) {
      if ((*it)->thread.joinable()) (*it)->thread.join();
      it = ops_.erase(it);
      --finished;
    } else {
      ++it;
    }
  }
  op->thread = std::thread([this, op] { Run(op); });
  return view;
}

void Operations::Run(std::shared_ptr<Running> op) {
  BulkRequest request;
  std::string id;
  {
    std::lock_guard lock(op->mu);
    request = op->view.request;
    id = op->view.id;
  }
  BulkProgress progress;
  Status st = RunBulk(
      queue_, request, op->cancel,
      [&](const BulkProgress& p) {
        std::lock_guard lock(op->mu);
        op->view.progress = p;
      },
      progress);
  const std::string state = !st.ok() ? "failed" : op->cancel.load() ? "cancelled" : "succeeded";
  // Audited before the view says it ended, so whoever sees it ended finds its entry.
  if (!request.dry_run) AuditBulk(queue_, request, progress, state, id);
  OperationView view;
  {
    std::lock_guard lock(op->mu);
    op->view.progress = progress;
    op->view.finished_at_ms = clock_.NowMs();
    op->view.state = state;
    op->view.error = st.ok() ? "" : st.message();
    view = op->view;
  }
  log::Info("bulk operation ended", {{"operation", view.id},
                                     {"action", BulkActionName(request.action)},
                                     {"state", view.state},
                                     {"matched", progress.matched},
                                     {"done", progress.done}});
  op->finished.store(true);
}

std::optional<OperationView> Operations::Get(const std::string& id) const {
  std::lock_guard lock(mu_);
  for (const auto& op : ops_) {
    std::lock_guard op_lock(op->mu);
    if (op->view.id == id) return op->view;
  }
  return std::nullopt;
}

std::vector<OperationView> Operations::List() const {
  std::lock_guard lock(mu_);
  std::vector<OperationView> out;
  for (auto it = ops_.rbegin(); it != ops_.rend(); ++it) {
    std::lock_guard op_lock((*it)->mu);
    out.push_back((*it)->view);
  }
  return out;
}

bool Operations::Cancel(const std::string& id) {
  std::lock_guard lock(mu_);
  for (const auto& op : ops_) {
    std::lock_guard op_lock(op->mu);
    if (op->view.id == id) {
      op->cancel.store(true);
      return true;
    }
  }
  return false;
}

}  // namespace firebreak
