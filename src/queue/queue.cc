#include "queue/queue.h"

#include "config/config.h"
#include "queue/sqlite/sqlite_queue.h"

namespace firebreak {

Result<std::unique_ptr<Queue>> OpenQueue(const QueueConfig& config, Clock& clock) {
  if (config.backend == "sqlite") return OpenSqliteQueue(config, clock);
  if (config.backend == "redis") {
    return InvalidArgument("queue backend \"redis\" is not available in this build yet");
  }
  return InvalidArgument("unknown queue backend \"" + config.backend +
                         "\" (expected \"sqlite\" or \"redis\")");
}

}  // namespace firebreak
