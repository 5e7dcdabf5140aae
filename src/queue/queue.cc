#include "queue/queue.h"

#include "config/config.h"
#include "queue/redis/redis_queue.h"
#include "queue/sqlite/sqlite_queue.h"

namespace firebreak {

Result<std::unique_ptr<Queue>> OpenQueue(const QueueConfig& config, Clock& clock) {
  if (config.backend == "sqlite") return OpenSqliteQueue(config, clock);
  if (config.backend == "redis") return OpenRedisQueue(config, clock);
  return InvalidArgument("unknown queue backend \"" + config.backend +
                         "\" (expected \"sqlite\" or \"redis\")");
}

std::string DescribeQueueLocation(const QueueConfig& config) {
  if (config.backend != "redis") return config.path;
  Result<redis::Address> address = redis::ParseRedisUrl(config.url);
  return address.ok() ? "redis://" + address->ToString() : "(bad url)";
}

}  // namespace firebreak
