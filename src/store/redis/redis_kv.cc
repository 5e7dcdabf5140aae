#include "store/redis/redis_kv.h"

#include <hiredis/hiredis.h>

namespace firebreak {
namespace {

constexpr std::chrono::milliseconds kConnectTimeout{1000};  // at most store.timeout

// KEYS[1] key; ARGV value, content type, ttl ms (0 = none), expected version (-1 = any).
// Returns the new version, or -1 when the expected version does not match.
constexpr char kPut[] = R"lua(
local version = tonumber(redis.call('HGET', KEYS[1], 'version') or '0')
local expected = tonumber(ARGV[4])
if expected >= 0 and version ~= expected then return -1 end
version = version + 1
redis.call('HSET', KEYS[1], 'value', ARGV[1], 'content_type', ARGV[2], 'version', version)
if tonumber(ARGV[3]) > 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
else
  redis.call('PERSIST', KEYS[1])
end
return version
)lua";

// KEYS[1] key; ARGV expected version (-1 = any). 1 deleted, 0 absent, -1 mismatch.
constexpr char kDelete[] = R"lua(
local version = redis.call('HGET', KEYS[1], 'version')
if not version then
  if tonumber(ARGV[1]) >= 0 then return -1 end
  return 0
end
if tonumber(ARGV[1]) >= 0 and tonumber(version) ~= tonumber(ARGV[1]) then return -1 end
redis.call('DEL', KEYS[1])
return 1
)lua";

Status RedisError(const redisReply* reply) {
  return Unavailable("redis: " + redis::ReplyString(reply));
}

}  // namespace

Result<std::unique_ptr<RedisKvStore>> RedisKvStore::Open(const std::string& url,
                                                         const std::string& name_space,
                                                         Clock& clock,
                                                         std::chrono::milliseconds timeout) {
  Result<redis::Address> address = redis::ParseRedisUrl(url);
  if (!address.ok()) return address.status();
  std::unique_ptr<RedisKvStore> store(new RedisKvStore(*address, name_space, clock, timeout));
  auto connection =
      redis::Connection::Open(*address, std::min(kConnectTimeout, timeout), timeout);
  if (!connection.ok()) return Unavailable(connection.status().message());
  store->connection_ = std::move(connection).value();
  return store;
}

Result<std::unique_lock<std::timed_mutex>> RedisKvStore::Lock() {
  std::unique_lock lock(mu_, timeout_);
  if (!lock.owns_lock()) {
    return Unavailable("sessions store redis " + address_.ToString() +
                       ": busy with an earlier call that has not finished (store.timeout)");
  }
  return lock;
}

Result<redis::Reply> RedisKvStore::Run(const std::vector<std::string>& argv) {
  for (int tries = 0; tries < 2; ++tries) {
    if (!connection_ || connection_->broken()) {
      auto connection =
          redis::Connection::Open(address_, std::min(kConnectTimeout, timeout_), timeout_);
      if (!connection.ok()) return connection.status();
      connection_ = std::move(connection).value();
    }
    Result<redis::Reply> reply = connection_->Command(argv);
    if (reply.ok()) return reply;
    connection_.reset();  // broken: one more try on a fresh connection (Redis restarted?)
    // A timeout is a hung Redis, not a restarted one: trying again would only double it.
    if (tries == 1 || reply.status().code() == StatusCode::kDeadlineExceeded) {
      return reply.status();
    }
  }
  return Unavailable("redis " + address_.ToString() + " unreachable");
}

Result<std::optional<StoredValue>> RedisKvStore::Get(const std::string& key) {
  if (Status s = CheckStoreKey(key); !s.ok()) return s;
  auto lock = Lock();
  if (!lock.ok()) return lock.status();
  const std::string k = prefix_ + key;
  Result<redis::Reply> fields = Run({"HMGET", k, "value", "content_type", "version"});
  if (!fields.ok()) return fields.status();
  if (redis::IsError(fields->get())) return RedisError(fields->get());
  const redisReply* r = fields->get();
  const redisReply* version = redis::ReplyElement(r, 2);
  if (version == nullptr || version->type == REDIS_REPLY_NIL) return std::optional<StoredValue>();
  StoredValue value;
  value.value = redis::ReplyString(redis::ReplyElement(r, 0));
  value.content_type = redis::ReplyString(redis::ReplyElement(r, 1));
  value.version = redis::ReplyInteger(version);
  Result<redis::Reply> ttl = Run({"PTTL", k});
  if (!ttl.ok()) return ttl.status();
  long long left = redis::ReplyInteger(ttl->get());
  if (left > 0) value.expires_at_ms = clock_.NowMs() + left;
  return std::optional<StoredValue>(std::move(value));
}

Result<int64_t> RedisKvStore::Put(const std::string& key, const std::string& value,
                                  const std::string& content_type, const PutOptions& options) {
  if (Status s = CheckStoreKey(key); !s.ok()) return s;
  if (Status s = CheckStoreValue(value); !s.ok()) return s;
  auto lock = Lock();
  if (!lock.ok()) return lock.status();
  const int64_t ttl = options.ttl ? std::max<int64_t>(1, options.ttl->count()) : 0;
  const int64_t expected = options.if_version ? *options.if_version : -1;
  Result<redis::Reply> reply = Run({"EVAL", kPut, "1", prefix_ + key, value, content_type,
                                    std::to_string(ttl), std::to_string(expected)});
  if (!reply.ok()) return reply.status();
  if (redis::IsError(reply->get())) return RedisError(reply->get());
  long long version = redis::ReplyInteger(reply->get());
  if (version < 0) {
    return FailedPrecondition("key " + key + " is not at version " + std::to_string(expected) +
                              (expected == 0 ? " (it exists)" : ""));
  }
  return static_cast<int64_t>(version);
}

Result<bool> RedisKvStore::Delete(const std::string& key, std::optional<int64_t> if_version) {
  if (Status s = CheckStoreKey(key); !s.ok()) return s;
  auto lock = Lock();
  if (!lock.ok()) return lock.status();
  const int64_t expected = if_version ? *if_version : -1;
  Result<redis::Reply> reply =
      Run({"EVAL", kDelete, "1", prefix_ + key, std::to_string(expected)});
  if (!reply.ok()) return reply.status();
  if (redis::IsError(reply->get())) return RedisError(reply->get());
  long long outcome = redis::ReplyInteger(reply->get());
  if (outcome < 0) {
    return FailedPrecondition("key " + key + " is not at version " + std::to_string(expected));
  }
  return outcome == 1;
}

Status RedisKvStore::Ping() {
  auto lock = Lock();
  if (!lock.ok()) return lock.status();
  Result<redis::Reply> reply = Run({"PING"});
  if (!reply.ok()) return reply.status();
  if (redis::IsError(reply->get())) return RedisError(reply->get());
  return Status::Ok();
}

}  // namespace firebreak
