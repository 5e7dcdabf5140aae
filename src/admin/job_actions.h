// What an operator does to one job or one job type, the same from the admin API and the
// CLI; every change is written to the audit log with its actor.
#pragma once

#include <string>

#include "common/status.h"
#include "queue/queue.h"

namespace firebreak {

struct RetryOutcome {
  std::string job_id;  // the job that will run: a new one (rerun) or the same (run now)
  bool rerun = false;  // a new job, linked to the original by replay_of
};

// A dead, succeeded or cancelled job runs again as a new job (Queue::Rerun); a waiting
// (delayed) job runs now (Queue::RunNow). kFailedPrecondition for a job in flight.
Result<RetryOutcome> RetryJob(Queue& queue, const std::string& id, const std::string& actor);
// Queue::Cancel, audited.
Status CancelJob(Queue& queue, const std::string& id, const std::string& actor);
// Queue::SetPaused, audited.
Status PauseJobType(Queue& queue, const std::string& type, bool paused, const std::string& actor);
// Queue::Purge of one dead job, audited.
Status DeleteDeadJob(Queue& queue, const std::string& id, const std::string& actor);
// Queue::Replay of one dead job, audited.
Status ReplayDeadJob(Queue& queue, const std::string& id, const std::string& actor);

// Writes one audit entry for a change that is done (`count` jobs); a failed write is
// logged, not returned: the change must still be reported as made.
void AuditChange(Queue& queue, const std::string& actor, const std::string& action,
                 const std::string& target, int64_t count = 1,
                 const std::string& detail_json = "{}");

}  // namespace firebreak
