#include "store/kv_store.h"

#include <algorithm>

#include "store/postgres/postgres_kv.h"
#include "store/redis/redis_kv.h"
#include "store/sqlite/sqlite_kv.h"

namespace firebreak {

int64_t ExpiresAt(const PutOptions& options, int64_t now_ms) {
  return options.ttl ? now_ms + std::max<int64_t>(1, options.ttl->count()) : 0;
}

Status CheckStoreKey(const std::string& key) {
  if (key.empty()) return InvalidArgument("key is empty");
  if (key.size() > kMaxStoreKeyBytes) {
    return InvalidArgument("key is longer than " + std::to_string(kMaxStoreKeyBytes) + " bytes");
  }
  for (char c : key) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      return InvalidArgument("key has a control character");
    }
  }
  return Status::Ok();
}

Status CheckStoreValue(const std::string& value) {
  if (value.size() > kMaxStoreValueBytes) {
    return InvalidArgument("value is larger than " + std::to_string(kMaxStoreValueBytes) +
                           " bytes");
  }
  return Status::Ok();
}

Result<std::unique_ptr<KvStore>> OpenSessionStore(const Config& config, Clock& clock) {
  if (config.store.sessions == "redis") {
    auto store = RedisKvStore::Open(config.store.sessions_url, "sessions", clock,
                                    config.store.timeout);
    if (!store.ok()) return store.status();
    return std::unique_ptr<KvStore>(std::move(store).value());
  }
  if (config.store.sessions != "sqlite") {
    return InvalidArgument("store.sessions: unknown backend \"" + config.store.sessions + "\"");
  }
  auto store = SqliteKvStore::Open(config.queue.path, "sessions", clock, config.store.timeout);
  if (!store.ok()) return store.status();
  return std::unique_ptr<KvStore>(std::move(store).value());
}

Result<std::unique_ptr<KvStore>> OpenStateStore(const Config& config, Clock& clock) {
  if (config.store.state == "postgres") {
    auto store = PostgresKvStore::Open(config.store.state_url, "state", clock, config.store.timeout);
    if (!store.ok()) return store.status();
    return std::unique_ptr<KvStore>(std::move(store).value());
  }
  if (config.store.state != "sqlite") {
    return InvalidArgument("store.state: unknown backend \"" + config.store.state + "\"");
  }
  auto store = SqliteKvStore::Open(config.queue.path, "state", clock, config.store.timeout);
  if (!store.ok()) return store.status();
  return std::unique_ptr<KvStore>(std::move(store).value());
}

}  // namespace firebreak
