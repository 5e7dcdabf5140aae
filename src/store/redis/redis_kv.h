// KvStore on Redis, for sessions (native TTL): one hash per key
// ("fb:kv:<namespace>:<key>" → value, content_type, version) with PEXPIRE. Writes with a
// version check are one Lua script, so they are atomic across processes and hosts.
// Every call returns within `timeout` (store.timeout): calls take turns on one
// connection (one that cannot start in time fails kUnavailable) and each command has
// that timeout.
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <string>

#include "common/redis_client.h"
#include "store/kv_store.h"

namespace firebreak {

class RedisKvStore final : public KvStore {
 public:
  // Connects once so a wrong URL or a down Redis fails the start; reconnects later on
  // demand. kInvalidArgument for a bad URL, kUnavailable when Redis cannot be reached.
  static Result<std::unique_ptr<RedisKvStore>> Open(const std::string& url,
                                                    const std::string& name_space, Clock& clock,
                                                    std::chrono::milliseconds timeout);

  Result<std::optional<StoredValue>> Get(const std::string& key) override;
  Result<int64_t> Put(const std::string& key, const std::string& value,
                      const std::string& content_type, const PutOptions& options) override;
  Result<bool> Delete(const std::string& key, std::optional<int64_t> if_version) override;
  Status Ping() override;
  std::string Describe() const override { return "redis " + address_.ToString(); }

 private:
  RedisKvStore(redis::Address address, std::string name_space, Clock& clock,
               std::chrono::milliseconds timeout)
      : address_(std::move(address)),
        prefix_("fb:kv:" + name_space + ":"),
        clock_(clock),
        timeout_(timeout) {}
  // Takes mu_ unless `timeout_` passes first.
  Result<std::unique_lock<std::timed_mutex>> Lock();
  // Runs one command, reconnecting once if the connection broke. Caller holds mu_.
  Result<redis::Reply> Run(const std::vector<std::string>& argv);

  const redis::Address address_;
  const std::string prefix_;
  Clock& clock_;
  const std::chrono::milliseconds timeout_;

  std::timed_mutex mu_;
  std::unique_ptr<redis::Connection> connection_;  // guarded by mu_
};

}  // namespace firebreak
