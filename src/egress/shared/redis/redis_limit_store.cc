#include "egress/shared/redis/redis_limit_store.h"

#include <hiredis/hiredis.h>

#include <algorithm>

namespace firebreak::egress {

using std::chrono::milliseconds;
using std::chrono::steady_clock;

namespace {

// Shared by the scripts: the server's clock, and the breaker hash as a Lua table.
// REPL_NONE: the scripts' writes go neither to the AOF nor to replicas. Limit state is
// worth nothing after a restart (leases expire in seconds), and with the queue's
// `appendfsync always` every write would otherwise cost an fsync: measured 5 ms per
// acquire+release on a busy disk instead of 0.1 ms. A restart or failover forgets the
// state: for about one call's length the cap may be exceeded (docs/egress.md).
constexpr char kCommon[] = R"LUA(
redis.set_repl(redis.REPL_NONE)
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function now_us()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local function fmt(x) return string.format('%d', x) end
local function load(key)
  local h = redis.call('HGETALL', key)
  local r = {st = 0, ou = 0, pu = 0}
  for i = 1, #h, 2 do r[h[i]] = tonumber(h[i + 1]) end
  return r
end
local function advance(r, now)
  if r.st == 2 and now >= r.ou then r.st = 1; r.pu = 0 end
  return r.st
end
local function window(r, now, bucket)
  local oldest = math.floor(now / bucket) * bucket - 9 * bucket
  local calls, fails = 0, 0
  for i = 0, 9 do
    local s = r['s' .. i]
    if s and s >= oldest and s <= now then
      calls = calls + (r['c' .. i] or 0)
      fails = fails + (r['f' .. i] or 0)
    end
  end
  return calls, fails
end
local function view(r, now, bucket, changed, probe, allowed)
  local left = 0
  if r.st == 2 then left = math.max(0, r.ou - now) end
  local calls, fails = 0, 0
  if bucket then calls, fails = window(r, now, bucket) end
  return {r.st, left, calls, fails, changed, probe, allowed}
end
local function save(key, r, ttl)
  local args = {'st', fmt(r.st), 'ou', fmt(r.ou), 'pu', fmt(r.pu)}
  for i = 0, 9 do
    if r['s' .. i] then
      table.insert(args, 's' .. i); table.insert(args, fmt(r['s' .. i]))
      table.insert(args, 'c' .. i); table.insert(args, fmt(r['c' .. i] or 0))
      table.insert(args, 'f' .. i); table.insert(args, fmt(r['f' .. i] or 0))
    end
  end
  redis.call('DEL', key)
  redis.call('HSET', key, unpack(args))
  redis.call('PEXPIRE', key, ttl)
end
)LUA";

// KEYS: leases. ARGV: max lease_ms token... → {granted, in_flight}
constexpr char kAcquire[] = R"LUA(
local now = now_ms()
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local live = redis.call('ZCARD', KEYS[1])
local max, lease = tonumber(ARGV[1]), tonumber(ARGV[2])
local granted = 0
for i = 3, #ARGV do
  if live + granted >= max then break end
  redis.call('ZADD', KEYS[1], fmt(now + lease), ARGV[i])
  granted = granted + 1
end
if granted > 0 then redis.call('PEXPIRE', KEYS[1], 2 * lease) end
return {granted, live + granted}
)LUA";

// KEYS: leases. ARGV: token... → in_flight
constexpr char kRelease[] = R"LUA(
for i = 1, #ARGV do redis.call('ZREM', KEYS[1], ARGV[i]) end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now_ms())
return redis.call('ZCARD', KEYS[1])
)LUA";

// KEYS: leases. ARGV: lease_ms token... → renewed
constexpr char kRenew[] = R"LUA(
local now = now_ms()
local lease = tonumber(ARGV[1])
local renewed = 0
for i = 2, #ARGV do
  local expiry = redis.call('ZSCORE', KEYS[1], ARGV[i])
  if expiry and tonumber(expiry) > now then
    redis.call('ZADD', KEYS[1], 'XX', fmt(now + lease), ARGV[i])
    renewed = renewed + 1
  end
end
if renewed > 0 then redis.call('PEXPIRE', KEYS[1], 2 * lease) end
return renewed
)LUA";

// KEYS: rate. ARGV: interval_us tolerance_us max_wait_us → {allowed, wait_us}
constexpr char kReserve[] = R"LUA(
local now = now_us()
local interval, tolerance, max_wait = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local wait = math.max(0, tat - tolerance - now)
if wait > max_wait then return {0, wait} end
local new = tat + interval
redis.call('SET', KEYS[1], fmt(new), 'PX', fmt(math.floor((new - now) / 1000) + 1000))
return {1, wait}
)LUA";

// KEYS: breaker. ARGV: verdict(0 ok, 1 failed, 2 abandoned) probe(0|1) failure_rate
// min_calls window_ms open_for_ms ttl_ms → breaker fields
constexpr char kRecord[] = R"LUA(
local now = now_ms()
local r = load(KEYS[1])
local before = advance(r, now)
local verdict, probe = tonumber(ARGV[1]), ARGV[2] == '1'
local rate, min_calls = tonumber(ARGV[3]), math.max(1, tonumber(ARGV[4]))
local bucket = math.max(1, math.floor(tonumber(ARGV[5]) / 10))
local open_for, ttl = tonumber(ARGV[6]), tonumber(ARGV[7])
if probe then
  r.pu = 0
  if r.st == 1 and verdict == 1 then
    r.st = 2; r.ou = now + open_for
  elseif r.st == 1 and verdict == 0 then
    r.st = 0
    for i = 0, 9 do r['s' .. i] = nil; r['c' .. i] = nil; r['f' .. i] = nil end
  end
elseif r.st == 0 and verdict ~= 2 then
  local idx = math.floor(now / bucket) % 10
  local start = math.floor(now / bucket) * bucket
  if r['s' .. idx] ~= start then
    r['s' .. idx] = start; r['c' .. idx] = 0; r['f' .. idx] = 0
  end
  r['c' .. idx] = r['c' .. idx] + 1
  if verdict == 1 then
    r['f' .. idx] = r['f' .. idx] + 1
    local calls, fails = window(r, now, bucket)
    if calls >= min_calls and fails >= rate * calls then
      r.st = 2; r.ou = now + open_for; r.pu = 0
    end
  end
end
save(KEYS[1], r, ttl)
local changed, allowed = 0, 0
if r.st ~= before then changed = 1 end
if r.st ~= 2 then allowed = 1 end
return view(r, now, bucket, changed, 0, allowed)
)LUA";

// KEYS: breaker. ARGV: probe_lease_ms ttl_ms → breaker fields (window not counted)
constexpr char kClaimProbe[] = R"LUA(
local now = now_ms()
local r = load(KEYS[1])
advance(r, now)
if r.st == 1 and r.pu <= now then
  r.pu = now + tonumber(ARGV[1])
  save(KEYS[1], r, tonumber(ARGV[2]))
  return view(r, now, nil, 0, 1, 1)
end
local allowed = 0
if r.st == 0 then allowed = 1 end
return view(r, now, nil, 0, 0, allowed)
)LUA";

// KEYS: leases breaker rate. ARGV: window_ms → {in_flight, tat - now (µs), breaker fields}
constexpr char kRead[] = R"LUA(
local now = now_ms()
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local live = redis.call('ZCARD', KEYS[1])
local r = load(KEYS[2])
advance(r, now)
local allowed = 0
if r.st ~= 2 then allowed = 1 end
local v = view(r, now, math.max(1, math.floor(tonumber(ARGV[1]) / 10)), 0, 0, allowed)
local tat = tonumber(redis.call('GET', KEYS[3]) or '0')
local rel = -1
if tat > 0 then rel = tat - now_us() end
local out = {live, rel}
for i = 1, #v do out[#out + 1] = v[i] end
return out
)LUA";

constexpr RedisLimitStore::Script kScripts[] = {
    RedisLimitStore::Script::kAcquire, RedisLimitStore::Script::kRelease,
    RedisLimitStore::Script::kRenew,   RedisLimitStore::Script::kReserve,
    RedisLimitStore::Script::kRecord,  RedisLimitStore::Script::kClaimProbe,
    RedisLimitStore::Script::kRead};

std::string Key(const std::string& integration, const char* what) {
  return "fb:lim:{" + integration + "}:" + what;
}

int64_t BreakerTtlMs(const CircuitBreakerConfig& config) {
  return 2 * std::max(config.window.count(), config.open_for.count()) + 60'000;
}

}  // namespace

const std::string& RedisLimitStore::Source(Script script) {
  static const std::vector<std::string> sources = [] {
    std::vector<std::string> out;
    for (const char* body : {kAcquire, kRelease, kRenew, kReserve, kRecord, kClaimProbe, kRead}) {
      out.push_back(std::string(kCommon) + body);
    }
    return out;
  }();
  return sources[static_cast<size_t>(script)];
}

Result<std::vector<int64_t>> ParseIntegerReply(const redisReply* reply) {
  if (reply == nullptr) return Internal("shared limits: no reply");
  if (reply->type == REDIS_REPLY_INTEGER) return std::vector<int64_t>{reply->integer};
  if (reply->type != REDIS_REPLY_ARRAY) {
    return Internal("shared limits: unexpected reply type " + std::to_string(reply->type) + ": " +
                    redis::ReplyString(reply));
  }
  std::vector<int64_t> out;
  out.reserve(reply->elements);
  for (size_t i = 0; i < reply->elements; ++i) {
    const redisReply* element = reply->element[i];
    if (element == nullptr || element->type != REDIS_REPLY_INTEGER) {
      return Internal("shared limits: reply element " + std::to_string(i) + " is not an integer");
    }
    out.push_back(element->integer);
  }
  return out;
}

RedisLimitStore::RedisLimitStore(std::string url, milliseconds timeout)
    : url_(std::move(url)), timeout_(timeout) {}

RedisLimitStore::~RedisLimitStore() = default;

Status RedisLimitStore::Connect() {
  Result<redis::Address> address = redis::ParseRedisUrl(url_);
  if (!address.ok()) return address.status();
  auto connection = redis::Connection::Open(*address, timeout_, timeout_);
  if (!connection.ok()) return connection.status();
  std::vector<std::string> shas;
  for (Script script : kScripts) (*connection)->Append({"SCRIPT", "LOAD", Source(script)});
  for (size_t i = 0; i < std::size(kScripts); ++i) {
    Result<redis::Reply> reply = (*connection)->GetReply();
    if (!reply.ok()) return reply.status();
    if (redis::IsError(reply->get())) {
      return Internal("redis: cannot load a shared-limits script: " +
                      redis::ReplyString(reply->get()));
    }
    shas.push_back(redis::ReplyString(reply->get()));
  }
  connection_ = std::move(connection).value();
  shas_ = std::move(shas);
  return Status::Ok();
}

Result<std::vector<int64_t>> RedisLimitStore::Run(Script script,
                                                  const std::vector<std::string>& keys,
                                                  const std::vector<std::string>& args) {
  for (int round = 0; round < 2; ++round) {
    if (!connection_) {
      if (steady_clock::now() < retry_at_) return last_error_;
      if (Status s = Connect(); !s.ok()) {
        connection_.reset();
        last_error_ = s;
        retry_at_ = steady_clock::now() + kLimitStoreCoolDown;
        return s;
      }
    }
    std::vector<std::string> argv;
    argv.reserve(3 + keys.size() + args.size());
    argv.push_back("EVALSHA");
    argv.push_back(shas_[static_cast<size_t>(script)]);
    argv.push_back(std::to_string(keys.size()));
    argv.insert(argv.end(), keys.begin(), keys.end());
    argv.insert(argv.end(), args.begin(), args.end());
    Result<redis::Reply> reply = connection_->Command(argv);
    if (!reply.ok()) {
      connection_.reset();
      last_error_ = reply.status();
      retry_at_ = steady_clock::now() + kLimitStoreCoolDown;
      return reply.status();
    }
    if (redis::IsError(reply->get())) {
      std::string error = redis::ReplyString(reply->get());
      if (error.rfind("NOSCRIPT", 0) == 0 && round == 0) {
        connection_.reset();  // Redis restarted under us: reconnect, which reloads
        continue;
      }
      return Unavailable("redis: shared limits: " + error);
    }
    return ParseIntegerReply(reply->get());
  }
  return Unavailable("redis: shared limits: scripts not loaded");
}

Result<LeaseGrant> RedisLimitStore::Acquire(const std::string& integration, int max,
                                            int64_t lease_ms,
                                            const std::vector<std::string>& tokens) {
  std::vector<std::string> args = {std::to_string(max), std::to_string(lease_ms)};
  args.insert(args.end(), tokens.begin(), tokens.end());
  auto fields = Run(Script::kAcquire, {Key(integration, "leases")}, args);
  if (!fields.ok()) return fields.status();
  if (fields->size() != 2) return Internal("shared limits: bad acquire reply");
  return LeaseGrant{static_cast<int>((*fields)[0]), static_cast<int>((*fields)[1])};
}

Result<int> RedisLimitStore::Release(const std::string& integration,
                                     const std::vector<std::string>& tokens) {
  auto fields = Run(Script::kRelease, {Key(integration, "leases")}, tokens);
  if (!fields.ok()) return fields.status();
  if (fields->size() != 1) return Internal("shared limits: bad release reply");
  return static_cast<int>((*fields)[0]);
}

Result<int> RedisLimitStore::Renew(const std::string& integration, int64_t lease_ms,
                                   const std::vector<std::string>& tokens) {
  std::vector<std::string> args = {std::to_string(lease_ms)};
  args.insert(args.end(), tokens.begin(), tokens.end());
  auto fields = Run(Script::kRenew, {Key(integration, "leases")}, args);
  if (!fields.ok()) return fields.status();
  if (fields->size() != 1) return Internal("shared limits: bad renew reply");
  return static_cast<int>((*fields)[0]);
}

Result<TokenReservation> RedisLimitStore::Reserve(const std::string& integration,
                                                  const GcraParams& params,
                                                  int64_t max_wait_us) {
  auto fields = Run(Script::kReserve, {Key(integration, "rate")},
                    {std::to_string(params.interval_us), std::to_string(params.tolerance_us),
                     std::to_string(max_wait_us)});
  if (!fields.ok()) return fields.status();
  if (fields->size() != 2) return Internal("shared limits: bad reserve reply");
  return TokenReservation{(*fields)[0] != 0, (*fields)[1]};
}

Result<SharedBreakerView> RedisLimitStore::Record(const std::string& integration,
                                                  const CircuitBreakerConfig& config,
                                                  CallVerdict verdict, bool probe) {
  char rate[32];
  std::snprintf(rate, sizeof(rate), "%.6f", config.failure_rate);
  auto fields = Run(Script::kRecord, {Key(integration, "br")},
                    {std::to_string(static_cast<int>(verdict)), probe ? "1" : "0", rate,
                     std::to_string(config.min_calls), std::to_string(config.window.count()),
                     std::to_string(config.open_for.count()),
                     std::to_string(BreakerTtlMs(config))});
  if (!fields.ok()) return fields.status();
  return ParseBreakerFields(*fields, 0);
}

Result<SharedBreakerView> RedisLimitStore::ClaimProbe(const std::string& integration,
                                                      int64_t probe_lease_ms) {
  auto fields = Run(Script::kClaimProbe, {Key(integration, "br")},
                    {std::to_string(probe_lease_ms),
                     std::to_string(2 * probe_lease_ms + 60'000)});
  if (!fields.ok()) return fields.status();
  return ParseBreakerFields(*fields, 0);
}

Result<SharedLimitsView> RedisLimitStore::Read(const std::string& integration,
                                               const CircuitBreakerConfig& config,
                                               const GcraParams* gcra) {
  auto fields = Run(Script::kRead,
                    {Key(integration, "leases"), Key(integration, "br"), Key(integration, "rate")},
                    {std::to_string(config.window.count())});
  if (!fields.ok()) return fields.status();
  if (fields->size() != 2 + kBreakerFields) return Internal("shared limits: bad read reply");
  auto breaker = ParseBreakerFields(*fields, 2);
  if (!breaker.ok()) return breaker.status();
  SharedLimitsView view;
  view.in_flight = static_cast<int>((*fields)[0]);
  view.breaker = *breaker;
  if (gcra != nullptr) {
    const int64_t tat_rel = (*fields)[1];
    view.tokens = GcraTokens(tat_rel < 0 ? 0 : tat_rel, 0, *gcra);
  }
  return view;
}

}  // namespace firebreak::egress
