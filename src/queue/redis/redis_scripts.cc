#include "queue/redis/redis_scripts.h"

#include <array>

namespace firebreak::redis {
namespace {

// Shared by every script. Numbers go back to Redis as decimal strings (I): Redis would
// otherwise format large Lua numbers in exponent notation.
//
// Job states: ready (in fb:ready:<type>, scored by run_at), parked (ready but waiting
// behind an older job of its ordering key; counted in fb:parked), in_flight (in
// fb:inflight:<type>, scored by lease expiry), dead (in fb:dead:<type> and fb:dead,
// scored by the time it died).
constexpr char kPrelude[] = R"lua(
local P = 'fb:'
local function I(n) return string.format('%d', n) end

local function depth_all()
  local total = 0
  for _, t in ipairs(redis.call('SMEMBERS', P .. 'types')) do
    total = total + redis.call('ZCARD', P .. 'ready:' .. t)
  end
  for _, v in ipairs(redis.call('HVALS', P .. 'parked')) do total = total + tonumber(v) end
  return total
end

-- Makes job `id` runnable at run_at, unless an older job of its ordering key is still
-- queued: then it is parked until that one leaves. Returns true when runnable.
local function make_ready(id, typ, okey, run_at, append_to_order)
  local jk = P .. 'job:' .. id
  if okey ~= '' then
    local ok = P .. 'order:' .. typ .. ':' .. okey
    if append_to_order then redis.call('RPUSH', ok, id) end
    if redis.call('LINDEX', ok, 0) ~= id then
      redis.call('HSET', jk, 'state', 'parked', 'run_at', I(run_at))
      redis.call('HINCRBY', P .. 'parked', typ, 1)
      return false
    end
  end
  redis.call('HSET', jk, 'state', 'ready', 'run_at', I(run_at))
  redis.call('ZADD', P .. 'ready:' .. typ, I(run_at), id)
  return true
end

-- Job `id` left its ordering key's line (done or dead): the next one becomes runnable.
local function leave_order(id, typ, okey, now)
  if okey == '' then return end
  local ok = P .. 'order:' .. typ .. ':' .. okey
  redis.call('LREM', ok, 1, id)
  local head = redis.call('LINDEX', ok, 0)
  if not head then return end
  local hk = P .. 'job:' .. head
  if redis.call('HGET', hk, 'state') ~= 'parked' then return end
  redis.call('HINCRBY', P .. 'parked', typ, -1)
  local run_at = tonumber(redis.call('HGET', hk, 'run_at'))
  redis.call('HSET', hk, 'state', 'ready')
  redis.call('ZADD', P .. 'ready:' .. typ, I(run_at), head)
  if run_at <= now then redis.call('PUBLISH', P .. 'wake', typ) end
end

-- The job holding one of `keys` as a live dedupe key, or nil.
local function dedupe_holder(keys)
  for _, k in ipairs(keys) do
    local holder = redis.call('GET', P .. 'dedupe:' .. k)
    if holder then return holder end
  end
  return nil
end

-- Stores a new job and its dedupe keys (the caller checked both). True when it is
-- runnable now.
local function store_job(now, ttl, id, typ, source, okey, max_attempts, enqueued_at, run_at,
                         payload, headers, traceparent, keys)
  redis.call('HSET', P .. 'job:' .. id, 'type', typ, 'source', source,
    'dedupe_key', keys[1] or '', 'ordering_key', okey, 'max_attempts', max_attempts,
    'enqueued_at', enqueued_at, 'payload', payload, 'headers', headers,
    'traceparent', traceparent, 'attempt', '0', 'lease_until', '0', 'claimed_at', '0',
    'dead_at', '0')
  redis.call('SADD', P .. 'types', typ)
  local runnable = make_ready(id, typ, okey, run_at, true)
  for _, k in ipairs(keys) do redis.call('SET', P .. 'dedupe:' .. k, id, 'PX', ttl) end
  return runnable and run_at <= now
end

local function kill(id, typ, okey, now)
  redis.call('HSET', P .. 'job:' .. id, 'state', 'dead', 'dead_at', I(now), 'lease_until', '0')
  redis.call('ZADD', P .. 'dead:' .. typ, I(now), id)
  redis.call('ZADD', P .. 'dead', I(now), id)
  leave_order(id, typ, okey, now)
end

local function replay(id, now)
  local jk = P .. 'job:' .. id
  local f = redis.call('HMGET', jk, 'state', 'type', 'ordering_key')
  if f[1] ~= 'dead' then return 0 end
  redis.call('ZREM', P .. 'dead:' .. f[2], id)
  redis.call('ZREM', P .. 'dead', id)
  redis.call('HSET', jk, 'attempt', '0', 'dead_at', '0', 'lease_until', '0')
  if make_ready(id, f[2], f[3] or '', now, true) then
    redis.call('PUBLISH', P .. 'wake', f[2])
  end
  return 1
end

local function purge(id)
  local jk = P .. 'job:' .. id
  local f = redis.call('HMGET', jk, 'state', 'type')
  if f[1] ~= 'dead' then return 0 end
  redis.call('ZREM', P .. 'dead:' .. f[2], id)
  redis.call('ZREM', P .. 'dead', id)
  redis.call('DEL', jk, P .. 'att:' .. id)
  return 1
end

local function dead_key(typ)
  if typ == '' then return P .. 'dead' end
  return P .. 'dead:' .. typ
end

-- Throughput counts (Queue::Throughput): one hash per minute, fb:tput:<minute>, with
-- fields a:<type> (jobs stored), f:<type> (attempts finished), b:<type> (their handler
-- ms) and `first` (the first event counted in that minute). Each expires 2 hours after
-- its first write.
local function tally(now, typ, arrived, finished, busy_ms)
  local k = P .. 'tput:' .. I(math.floor(now / 60000))
  if redis.call('HSETNX', k, 'first', I(now)) == 1 then redis.call('PEXPIRE', k, 7200000) end
  if arrived > 0 then redis.call('HINCRBY', k, 'a:' .. typ, arrived) end
  if finished > 0 then redis.call('HINCRBY', k, 'f:' .. typ, finished) end
  if busy_ms > 0 then redis.call('HINCRBY', k, 'b:' .. typ, busy_ms) end
end
)lua";

constexpr char kEnqueue[] = R"lua(
local now = tonumber(ARGV[1])
local keys = {}
for i = 1, tonumber(ARGV[14]) do keys[i] = ARGV[14 + i] end
local holder = dedupe_holder(keys)
if holder then return {'dup', holder} end
local max_depth = tonumber(ARGV[2])
if max_depth > 0 and depth_all() >= max_depth then return {'full', ''} end
local id, typ = ARGV[4], ARGV[5]
if redis.call('EXISTS', P .. 'job:' .. id) == 1 then return {'exists', id} end
tally(now, typ, 1, 0, 0)
if store_job(now, ARGV[3], id, typ, ARGV[6], ARGV[7], ARGV[8], ARGV[9], tonumber(ARGV[10]),
             ARGV[11], ARGV[12], ARGV[13], keys) then
  -- Wake idle workers only when this is the one runnable job of its type: a worker
  -- claims again for as long as its claims come back non-empty, so later jobs are
  -- found without a message per enqueue (which would cost Redis one write per worker).
  if redis.call('ZCOUNT', P .. 'ready:' .. typ, '-inf', I(now)) == 1 then
    redis.call('PUBLISH', P .. 'wake', typ)
  end
  return {'ok', '1'}
end
return {'ok', '0'}
)lua";

constexpr char kClaim[] = R"lua(
local now = tonumber(ARGV[1])
local n = tonumber(ARGV[2])
local out = {}
for s = 0, n - 1 do
  local typ = ARGV[3 + 3 * s]
  local limit = tonumber(ARGV[4 + 3 * s])
  local lease = tonumber(ARGV[5 + 3 * s])
  if limit > 0 then
    local rk = P .. 'ready:' .. typ
    local ids = redis.call('ZRANGEBYSCORE', rk, '-inf', I(now), 'LIMIT', 0, limit)
    for _, id in ipairs(ids) do
      redis.call('ZREM', rk, id)
      local jk = P .. 'job:' .. id
      if redis.call('EXISTS', jk) == 1 then
        local lease_until = now + lease
        local attempt = redis.call('HINCRBY', jk, 'attempt', 1)
        redis.call('HSET', jk, 'state', 'in_flight', 'lease_until', I(lease_until),
          'claimed_at', I(now))
        redis.call('ZADD', P .. 'inflight:' .. typ, I(lease_until), id)
        local f = redis.call('HMGET', jk, 'type', 'source', 'dedupe_key', 'payload', 'headers',
          'traceparent', 'ordering_key', 'max_attempts', 'enqueued_at', 'run_at')
        out[#out + 1] = id
        out[#out + 1] = I(attempt)
        for i = 1, 10 do out[#out + 1] = f[i] or '' end
      end
    end
  end
end
return out
)lua";

constexpr char kFinish[] = R"lua(
local now = tonumber(ARGV[1])
local id = ARGV[2]
local jk = P .. 'job:' .. id
local f = redis.call('HMGET', jk, 'state', 'attempt', 'type', 'ordering_key')
if f[1] ~= 'in_flight' or f[2] ~= ARGV[3] then return 'stale' end
local typ, okey = f[3], f[4] or ''
redis.call('ZREM', P .. 'inflight:' .. typ, id)
local disposition = ARGV[4]
if disposition ~= 'release' then tally(now, typ, 0, 1, math.max(0, tonumber(ARGV[7]))) end
if disposition == 'succeeded' then
  redis.call('DEL', jk, P .. 'att:' .. id)
  leave_order(id, typ, okey, now)
  -- The outbox: follow-up jobs (a handler's actions) are stored in this same script.
  -- ARGV[8] dedupe ttl, ARGV[9] count, then per job 10 fields, a key count and the keys.
  local woke = false
  local pos = 10
  for _ = 1, tonumber(ARGV[9] or '0') do
    local keys = {}
    for k = 1, tonumber(ARGV[pos + 10]) do keys[k] = ARGV[pos + 10 + k] end
    local fid, ftyp = ARGV[pos], ARGV[pos + 1]
    if not dedupe_holder(keys) and redis.call('EXISTS', P .. 'job:' .. fid) == 0 then
      tally(now, ftyp, 1, 0, 0)
      if store_job(now, ARGV[8], fid, ftyp, ARGV[pos + 2], ARGV[pos + 3], ARGV[pos + 4],
                   ARGV[pos + 5], tonumber(ARGV[pos + 6]), ARGV[pos + 7], ARGV[pos + 8],
                   ARGV[pos + 9], keys) then
        redis.call('PUBLISH', P .. 'wake', ftyp)
        woke = true
      end
    end
    pos = pos + 11 + #keys
  end
  if woke then return 'woke' end
  return 'ok'
end
if ARGV[6] ~= '' then redis.call('RPUSH', P .. 'att:' .. id, ARGV[6]) end
redis.call('HSET', jk, 'lease_until', '0')
if disposition == 'dead' then
  kill(id, typ, okey, now)
  return 'ok'
end
if disposition == 'release' then redis.call('HINCRBY', jk, 'attempt', -1) end
local run_at = tonumber(ARGV[5])
if make_ready(id, typ, okey, run_at, false) and run_at <= now then
  redis.call('PUBLISH', P .. 'wake', typ)
  return 'woke'
end
return 'ok'
)lua";

// Leases that ran out: the job's worker died or lost its connection. The attempt is
// recorded as lease_expired; the job runs again at once or, on its last attempt, dies.
constexpr char kSweep[] = R"lua(
local now = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local requeued, dead, more = 0, 0, 0
for _, typ in ipairs(redis.call('SMEMBERS', P .. 'types')) do
  local ik = P .. 'inflight:' .. typ
  local ids = redis.call('ZRANGEBYSCORE', ik, '-inf', I(now), 'LIMIT', 0, limit)
  if #ids == limit then more = 1 end
  for _, id in ipairs(ids) do
    redis.call('ZREM', ik, id)
    local jk = P .. 'job:' .. id
    local f = redis.call('HMGET', jk, 'attempt', 'max_attempts', 'claimed_at', 'ordering_key',
      'state')
    if f[5] == 'in_flight' then
      local attempt = tonumber(f[1])
      local claimed_at = tonumber(f[3]) or now
      local record = '{"attempt":' .. I(attempt) .. ',"started_at_ms":' .. I(claimed_at) ..
        ',"duration_ms":' .. I(math.max(0, now - claimed_at)) ..
        ',"outcome":"lease_expired","error":"lease expired: worker died or stalled"}'
      redis.call('RPUSH', P .. 'att:' .. id, record)
      redis.call('HSET', jk, 'lease_until', '0')
      if attempt >= tonumber(f[2]) then
        kill(id, typ, f[4] or '', now)
        dead = dead + 1
      else
        if make_ready(id, typ, f[4] or '', now, false) then
          redis.call('PUBLISH', P .. 'wake', typ)
        end
        requeued = requeued + 1
      end
    end
  end
end
return {requeued, dead, more}
)lua";

constexpr char kStats[] = R"lua(
local now = I(tonumber(ARGV[1]))
local out = {}
for _, typ in ipairs(redis.call('SMEMBERS', P .. 'types')) do
  local rk = P .. 'ready:' .. typ
  local parked = tonumber(redis.call('HGET', P .. 'parked', typ) or '0')
  out[#out + 1] = typ
  out[#out + 1] = redis.call('ZCOUNT', rk, '-inf', now) + parked
  out[#out + 1] = redis.call('ZCOUNT', rk, '(' .. now, '+inf')
  out[#out + 1] = redis.call('ZCARD', P .. 'inflight:' .. typ)
  out[#out + 1] = redis.call('ZCARD', P .. 'dead:' .. typ)
end
return out
)lua";

// ARGV: now first_minute. Reply: {since, field, count, field, count, ...} summed over
// the minutes from first_minute to the current one; `since` is the first event of the
// oldest minute still kept ('' when none is).
constexpr char kThroughput[] = R"lua(
local now = tonumber(ARGV[1])
local last = math.floor(now / 60000)
local since = ''
for m = last - 120, last do
  local first = redis.call('HGET', P .. 'tput:' .. I(m), 'first')
  if first then
    since = first
    break
  end
end
local sums, order = {}, {}
for m = tonumber(ARGV[2]), last do
  local h = redis.call('HGETALL', P .. 'tput:' .. I(m))
  for i = 1, #h, 2 do
    local field = h[i]
    if field ~= 'first' then
      if not sums[field] then order[#order + 1] = field end
      sums[field] = (sums[field] or 0) + tonumber(h[i + 1])
    end
  end
end
local out = {since}
for _, field in ipairs(order) do
  out[#out + 1] = field
  out[#out + 1] = I(sums[field])
end
return out
)lua";

constexpr char kGetJob[] = R"lua(
return {redis.call('HGETALL', P .. 'job:' .. ARGV[1]),
        redis.call('LRANGE', P .. 'att:' .. ARGV[1], 0, -1)}
)lua";

// Newest first; a page ends after `limit` entries strictly after the cursor
// (dead_at, id) in (dead_at desc, id desc) order.
constexpr char kListDead[] = R"lua(
local key = dead_key(ARGV[1])
local limit = tonumber(ARGV[2])
local max = '+inf'
local cursor_score, cursor_id = nil, ARGV[4]
if ARGV[3] ~= '' then
  max = ARGV[3]
  cursor_score = tonumber(ARGV[3])
end
local out = {}
local offset = 0
while #out < 2 * limit do
  local batch = redis.call('ZREVRANGEBYSCORE', key, max, '-inf', 'WITHSCORES', 'LIMIT', offset,
    limit + 16)
  if #batch == 0 then break end
  offset = offset + #batch / 2
  for i = 1, #batch, 2 do
    local id, score = batch[i], tonumber(batch[i + 1])
    if not (cursor_score and score == cursor_score and id >= cursor_id) then
      if #out < 2 * limit then
        out[#out + 1] = id
        out[#out + 1] = I(score)
      end
    end
  end
end
return out
)lua";

constexpr char kReplay[] = R"lua(
return replay(ARGV[2], tonumber(ARGV[1]))
)lua";

constexpr char kPurge[] = R"lua(
return purge(ARGV[1])
)lua";

constexpr char kReplayChunk[] = R"lua(
local now = tonumber(ARGV[1])
local done = 0
for _, id in ipairs(redis.call('ZRANGE', dead_key(ARGV[2]), 0, tonumber(ARGV[3]) - 1)) do
  done = done + replay(id, now)
end
return done
)lua";

constexpr char kPurgeChunk[] = R"lua(
local done = 0
for _, id in ipairs(redis.call('ZRANGE', dead_key(ARGV[1]), 0, tonumber(ARGV[2]) - 1)) do
  done = done + purge(id)
end
return done
)lua";

struct Entry {
  const char* name;
  const char* body;
};
constexpr std::array<Entry, kScriptCount> kScripts = {{
    {"enqueue", kEnqueue},
    {"claim", kClaim},
    {"finish", kFinish},
    {"sweep", kSweep},
    {"stats", kStats},
    {"get_job", kGetJob},
    {"list_dead", kListDead},
    {"replay", kReplay},
    {"purge", kPurge},
    {"replay_chunk", kReplayChunk},
    {"purge_chunk", kPurgeChunk},
    {"throughput", kThroughput},
}};

}  // namespace

const std::string& ScriptSource(Script script) {
  static const std::array<std::string, kScriptCount> sources = [] {
    std::array<std::string, kScriptCount> out;
    for (int i = 0; i < kScriptCount; ++i) {
      out[static_cast<size_t>(i)] = std::string(kPrelude) + kScripts[static_cast<size_t>(i)].body;
    }
    return out;
  }();
  return sources[static_cast<size_t>(script)];
}

const char* ScriptName(Script script) { return kScripts[static_cast<size_t>(script)].name; }

}  // namespace firebreak::redis
