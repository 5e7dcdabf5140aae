#include "queue/job.h"

namespace firebreak {

const char* JobStateName(JobState state) {
  switch (state) {
    case JobState::kReady:
      return "ready";
    case JobState::kInFlight:
      return "in_flight";
    case JobState::kDead:
      return "dead";
    case JobState::kSucceeded:
      return "succeeded";
    case JobState::kCancelled:
      return "cancelled";
    case JobState::kReplayed:
      return "replayed";
  }
  return "unknown";
}

bool ParseJobState(std::string_view name, JobState& state) {
  for (JobState s : {JobState::kReady, JobState::kInFlight, JobState::kDead, JobState::kSucceeded,
                     JobState::kCancelled, JobState::kReplayed}) {
    if (name == JobStateName(s)) {
      state = s;
      return true;
    }
  }
  return false;
}

bool IsFinished(JobState state) {
  return state == JobState::kSucceeded || state == JobState::kCancelled ||
         state == JobState::kReplayed;
}

}  // namespace firebreak
