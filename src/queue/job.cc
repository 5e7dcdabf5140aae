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
  }
  return "unknown";
}

}  // namespace firebreak
