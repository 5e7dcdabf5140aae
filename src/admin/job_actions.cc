#include "admin/job_actions.h"

#include "telemetry/log.h"

namespace firebreak {
void AuditChange(Queue& queue, const std::string& actor, const std::string& action,
                 const std::string& target, int64_t count, const std::string& detail_json) {
  AuditEntry entry;
  entry.actor = actor;
  entry.action = action;
  entry.target = target;
  entry.count = count;
  entry.detail_json = detail_json;
  if (Status st = queue.AppendAudit(entry); !st.ok()) {
    log::Error("audit log write failed",
               {{"action", action}, {"target", target}, {"error", st.message()}});
  }
}

Result<RetryOutcome> RetryJob(Queue& queue, const std::string& id, const std::string& actor) {
  Result<Job> job = queue.GetJob(id);
  if (!job.ok()) return job.status();
  RetryOutcome outcome;
  if (job->state == JobState::kReady) {
    if (Status st = queue.RunNow(id); !st.ok()) return st;
    outcome.job_id = id;
    AuditChange(queue, actor, "job.run_now", id);
    return outcome;
  }
  Result<std::string> rerun = queue.Rerun(id);
  if (!rerun.ok()) return rerun.status();
  outcome.job_id = *rerun;
  outcome.rerun = true;
  AuditChange(queue, actor, "job.retry", id, 1, "{\"new_job_id\":\"" + *rerun + "\"}");
  return outcome;
}

Status CancelJob(Queue& queue, const std::string& id, const std::string& actor) {
  Status st = queue.Cancel(id);
  if (st.ok()) AuditChange(queue, actor, "job.cancel", id);
  return st;
}

Status PauseJobType(Queue& queue, const std::string& type, bool paused,
                    const std::string& actor) {
  Status st = queue.SetPaused(type, paused);
  if (st.ok()) AuditChange(queue, actor, paused ? "queue.pause" : "queue.resume", type);
  return st;
}

Status DeleteDeadJob(Queue& queue, const std::string& id, const std::string& actor) {
  Status st = queue.Purge(id);
  if (st.ok()) AuditChange(queue, actor, "dead.delete", id);
  return st;
}

Status ReplayDeadJob(Queue& queue, const std::string& id, const std::string& actor) {
  Status st = queue.Replay(id);
  if (st.ok()) AuditChange(queue, actor, "dead.replay", id);
  return st;
}

}  // namespace firebreak
