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
// scored by the time it died), and the finished ones kept as history for
// queue.retention: succeeded, cancelled, replayed (in fb:finished by finish time).
//
// History and search (issue 15): every job has a `seq` (INCR fb:seq) and is in fb:all
// and in fb:st:<ix> (ix: ready, in_flight, dead or a finished state; the hash field `ix`
// says which), and in fb:key:<key> for each of its search keys, all scored by seq:
// ListJobs walks one of them newest first. fb:finpay holds finished jobs whose payload
// goes before the job (retention_payload); fb:fcount:<state> counts finished jobs per type.
constexpr char kPrelude[] = R"lua(
local P = 'fb:'
local function I(n) return string.format('%d', n) end

-- Moves job `id` to the search index of state `to` (nil: out of every one).
local function index_state(jk, id, to)
  local f = redis.call('HMGET', jk, 'seq', 'ix')
  if f[2] then redis.call('ZREM', P .. 'st:' .. f[2], id) end
  if to then
    redis.call('ZADD', P .. 'st:' .. to, f[1] or '0', id)
    redis.call('HSET', jk, 'ix', to)
  end
end

-- Deletes a job with its attempts and every index entry.
local function delete_job(id)
  local jk = P .. 'job:' .. id
  local keys = redis.call('HGET', jk, 'search_keys')
  if keys then
    for k in string.gmatch(keys, '[^\n]+') do redis.call('ZREM', P .. 'key:' .. k, id) end
  end
  index_state(jk, id, nil)
  redis.call('ZREM', P .. 'all', id)
  redis.call('ZREM', P .. 'finished', id)
  redis.call('ZREM', P .. 'finpay', id)
  redis.call('DEL', jk, P .. 'att:' .. id)
end

-- Job `id` of `typ` reached finished state `state` at `now` (kept until retention).
local function finish_job(jk, id, typ, state, now, finpay)
  redis.call('HSET', jk, 'state', state, 'finished_at', I(now), 'lease_until', '0')
  index_state(jk, id, state)
  redis.call('ZADD', P .. 'finished', I(now), id)
  if finpay == '1' then redis.call('ZADD', P .. 'finpay', I(now), id) end
  redis.call('HINCRBY', P .. 'fcount:' .. state, typ, 1)
end

-- Runnable and delayed jobs of a type wait in one sorted set per priority level
-- (0..MAX_PRIORITY, queue/job.h kMaxPriority), scored by run_at.
local MAX_PRIORITY = 3
local function ready_key(typ, priority)
  if priority == 0 then return P .. 'ready:' .. typ end
  return P .. 'ready:' .. typ .. ':' .. I(priority)
end
local function job_priority(jk)
  local p = tonumber(redis.call('HGET', jk, 'priority') or '0') or 0
  return math.min(MAX_PRIORITY, math.max(0, p))
end

local function depth_all()
  local total = 0
  for _, t in ipairs(redis.call('SMEMBERS', P .. 'types')) do
    for p = 0, MAX_PRIORITY do total = total + redis.call('ZCARD', ready_key(t, p)) end
  end
  for _, v in ipairs(redis.call('HVALS', P .. 'parked')) do total = total + tonumber(v) end
  return total
end

-- The most jobs of the key of job hash `jk` that may be runnable or in flight at once.
local function key_limit(jk)
  return math.max(1, tonumber(redis.call('HGET', jk, 'key_limit') or '1') or 1)
end

-- Makes job `id` runnable at run_at, unless key_limit older jobs of its key are still
-- queued or in flight (the first key_limit entries of the key's line): then it is parked
-- until one of them leaves. Returns true when runnable.
local function make_ready(id, typ, okey, run_at, append_to_order)
  local jk = P .. 'job:' .. id
  if okey ~= '' then
    local ok = P .. 'order:' .. typ .. ':' .. okey
    local limit = key_limit(jk)
    local parked
    if append_to_order then
      parked = redis.call('RPUSH', ok, id) > limit
    else
      parked = not redis.call('LPOS', ok, id, 'MAXLEN', limit)
    end
    if parked then
      redis.call('HSET', jk, 'state', 'parked', 'run_at', I(run_at))
      redis.call('HINCRBY', P .. 'parked', typ, 1)
      return false
    end
  end
  redis.call('HSET', jk, 'state', 'ready', 'run_at', I(run_at))
  redis.call('ZADD', ready_key(typ, job_priority(jk)), I(run_at), id)
  return true
end

-- Job `id` left its key's line (done, dead or cancelled; its hash still there): the
-- parked job that moves up to the line's last runnable place becomes runnable. It sorts
-- as runnable from now, not from when it arrived, so it queues behind every job that was
-- runnable before it: a key with a long backlog takes turns with the other keys.
local function leave_order(id, typ, okey, now)
  if okey == '' then return end
  local ok = P .. 'order:' .. typ .. ':' .. okey
  local limit = key_limit(P .. 'job:' .. id)
  redis.call('LREM', ok, 1, id)
  local moved_up = redis.call('LINDEX', ok, limit - 1)
  if not moved_up then return end
  local hk = P .. 'job:' .. moved_up
  if redis.call('HGET', hk, 'state') ~= 'parked' then return end
  redis.call('HINCRBY', P .. 'parked', typ, -1)
  local run_at = math.max(tonumber(redis.call('HGET', hk, 'run_at')), now)
  redis.call('HSET', hk, 'state', 'ready', 'run_at', I(run_at))
  redis.call('ZADD', ready_key(typ, job_priority(hk)), I(run_at), moved_up)
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

-- Cancels job `id` if it waits (ready, delayed or parked), with `reason` as its last
-- error unless ''. Returns 'ok', 'notfound', or the search-index state it is in.
local function cancel_waiting(id, now, finpay, reason)
  local jk = P .. 'job:' .. id
  local f = redis.call('HMGET', jk, 'ix', 'state', 'type', 'ordering_key')
  if not f[1] then return 'notfound' end
  if f[1] ~= 'ready' then return f[1] end
  if f[2] == 'parked' then
    redis.call('HINCRBY', P .. 'parked', f[3], -1)
  else
    redis.call('ZREM', ready_key(f[3], job_priority(jk)), id)
  end
  leave_order(id, f[3], f[4] or '', now)
  if reason ~= '' then redis.call('HSET', jk, 'last_error', reason) end
  finish_job(jk, id, f[3], 'cancelled', now, finpay)
  return 'ok'
end

-- Stores a new job and its dedupe keys (the caller checked both). A job with a debounce
-- key supersedes the one still waiting under it. True when it is runnable now.
local function store_job(now, ttl, id, typ, source, okey, max_attempts, enqueued_at, run_at,
                         payload, headers, traceparent, parent_id, replay_of, search_keys, keys,
                         limit, priority, dkey, finpay)
  if dkey and dkey ~= '' then
    local dk = P .. 'debounce:' .. typ .. ':' .. dkey
    local holder = redis.call('GET', dk)
    if holder then cancel_waiting(holder, now, finpay, 'superseded by ' .. id) end
    -- Kept while its job may wait: a day bounds every delay a debounce adds (1 h).
    redis.call('SET', dk, id, 'PX', 86400000)
  end
  local jk = P .. 'job:' .. id
  local seq = I(redis.call('INCR', P .. 'seq'))
  redis.call('HSET', jk, 'type', typ, 'source', source,
    'dedupe_key', keys[1] or '', 'ordering_key', okey, 'max_attempts', max_attempts,
    'enqueued_at', enqueued_at, 'payload', payload, 'headers', headers,
    'traceparent', traceparent, 'attempt', '0', 'lease_until', '0', 'claimed_at', '0',
    'dead_at', '0', 'seq', seq, 'parent_id', parent_id, 'replay_of', replay_of,
    'search_keys', search_keys, 'key_limit', limit, 'priority', priority)
  redis.call('SADD', P .. 'types', typ)
  redis.call('ZADD', P .. 'all', seq, id)
  for k in string.gmatch(search_keys, '[^\n]+') do redis.call('ZADD', P .. 'key:' .. k, seq, id) end
  index_state(jk, id, 'ready')
  local runnable = make_ready(id, typ, okey, run_at, true)
  for _, k in ipairs(keys) do redis.call('SET', P .. 'dedupe:' .. k, id, 'PX', ttl) end
  return runnable and run_at <= now
end

local function kill(id, typ, okey, now, err)
  local jk = P .. 'job:' .. id
  redis.call('HSET', jk, 'state', 'dead', 'dead_at', I(now), 'finished_at', I(now),
    'lease_until', '0', 'last_error', err)
  index_state(jk, id, 'dead')
  redis.call('ZADD', P .. 'dead:' .. typ, I(now), id)
  redis.call('ZADD', P .. 'dead', I(now), id)
  leave_order(id, typ, okey, now)
end

-- Runs dead or finished job `id` again as new job `nid` (replay_of = id); a dead one
-- becomes replayed. {'ok'} | {'notfound'} | {'state', state, replayed_as} | {'pruned'}.
local function rerun(now, id, nid, dead_only, finpay)
  local jk = P .. 'job:' .. id
  local f = redis.call('HMGET', jk, 'ix', 'type', 'source', 'dedupe_key', 'ordering_key',
    'max_attempts', 'payload', 'headers', 'traceparent', 'parent_id', 'search_keys',
    'replayed_as', 'payload_pruned', 'key_limit', 'priority')
  if not f[1] then return {'notfound'} end
  if dead_only and f[1] ~= 'dead' then return {'notfound'} end
  if f[1] == 'ready' or f[1] == 'in_flight' or f[1] == 'replayed' then
    return {'state', f[1], f[12] or ''}
  end
  if f[13] == '1' then return {'pruned'} end
  local typ = f[2]
  -- The same keys, but linked to this job instead of what the original replayed.
  local keys = {}
  for k in string.gmatch(f[11] or '', '[^\n]+') do
    if string.sub(k, 1, 10) ~= 'replay_of:' then keys[#keys + 1] = k end
  end
  keys[#keys + 1] = 'replay_of:' .. id
  if store_job(now, 1, nid, typ, f[3], f[5] or '', f[6], I(now), now, f[7], f[8], f[9],
               f[10] or '', id, table.concat(keys, '\n'), {}, f[14] or '1', f[15] or '0') then
    redis.call('PUBLISH', P .. 'wake', typ)
  end
  redis.call('HSET', P .. 'job:' .. nid, 'dedupe_key', f[4] or '')
  if f[1] == 'dead' then
    redis.call('ZREM', P .. 'dead:' .. typ, id)
    redis.call('ZREM', P .. 'dead', id)
    redis.call('HSET', jk, 'replayed_as', nid)
    finish_job(jk, id, typ, 'replayed', now, finpay)
  end
  return {'ok'}
end

local function purge(id)
  local jk = P .. 'job:' .. id
  local f = redis.call('HMGET', jk, 'state', 'type')
  if f[1] ~= 'dead' then return 0 end
  redis.call('ZREM', P .. 'dead:' .. f[2], id)
  redis.call('ZREM', P .. 'dead', id)
  delete_job(id)
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
for i = 1, tonumber(ARGV[21]) do keys[i] = ARGV[21 + i] end
local holder = dedupe_holder(keys)
if holder then return {'dup', holder} end
local max_depth = tonumber(ARGV[2])
if max_depth > 0 and depth_all() >= max_depth then return {'full', ''} end
local id, typ = ARGV[4], ARGV[5]
if redis.call('EXISTS', P .. 'job:' .. id) == 1 then return {'exists', id} end
tally(now, typ, 1, 0, 0)
if store_job(now, ARGV[3], id, typ, ARGV[6], ARGV[7], ARGV[8], ARGV[9], tonumber(ARGV[10]),
             ARGV[11], ARGV[12], ARGV[13], ARGV[14], ARGV[15], ARGV[16], keys, ARGV[17],
             ARGV[18], ARGV[19], ARGV[20]) then
  -- Wake idle workers only when this is the one runnable job of its type: a worker
  -- claims again for as long as its claims come back non-empty, so later jobs are
  -- found without a message per enqueue (which would cost Redis one write per worker).
  if redis.call('ZCOUNT', ready_key(typ, job_priority(P .. 'job:' .. id)), '-inf', I(now)) == 1 then
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

-- Moves job `id` (waiting in ready set `rk`) in flight for `lease` ms; appends it to out.
local function claim_job(id, rk, typ, lease)
  redis.call('ZREM', rk, id)
  local jk = P .. 'job:' .. id
  if redis.call('EXISTS', jk) == 0 then return end
  local lease_until = now + lease
  local attempt = redis.call('HINCRBY', jk, 'attempt', 1)
  redis.call('HSET', jk, 'state', 'in_flight', 'lease_until', I(lease_until), 'claimed_at', I(now))
  redis.call('ZADD', P .. 'inflight:' .. typ, I(lease_until), id)
  index_state(jk, id, 'in_flight')
  local f = redis.call('HMGET', jk, 'type', 'source', 'dedupe_key', 'payload', 'headers',
    'traceparent', 'ordering_key', 'max_attempts', 'enqueued_at', 'run_at')
  out[#out + 1] = id
  out[#out + 1] = I(attempt)
  for i = 1, 10 do out[#out + 1] = f[i] or '' end
end

-- Throttle per key: fb:thr:<type>:<key> lists the key's latest `tlimit` starts, newest
-- first. Returns nil when the key has room (and counts this start), else the time it
-- has room again: when its tlimit-th newest start leaves the window of `tperiod` ms.
local function throttled(typ, id, tlimit, tperiod)
  local okey = redis.call('HGET', P .. 'job:' .. id, 'ordering_key') or ''
  if okey == '' then return nil end
  local tk = P .. 'thr:' .. typ .. ':' .. okey
  local nth = tonumber(redis.call('LINDEX', tk, tlimit - 1) or '')
  if nth and nth > now - tperiod then return nth + tperiod end
  redis.call('LPUSH', tk, I(now))
  redis.call('LTRIM', tk, 0, tlimit - 1)
  redis.call('PEXPIRE', tk, tperiod)
  return nil
end

for s = 0, n - 1 do
  local typ = ARGV[3 + 7 * s]
  local limit = tonumber(ARGV[4 + 7 * s])
  local lease = tonumber(ARGV[5 + 7 * s])
  local step = tonumber(ARGV[6 + 7 * s])
  local tlimit = tonumber(ARGV[7 + 7 * s])
  local tperiod = tonumber(ARGV[8 + 7 * s])
  local glimit = tonumber(ARGV[9 + 7 * s])
  -- global_concurrency: room left under the cap over every process (expired leases
  -- count until the sweep takes them back).
  if glimit > 0 then
    limit = math.min(limit, glimit - redis.call('ZCARD', P .. 'inflight:' .. typ))
  end
  local throttle = tlimit > 0 and tperiod > 0
  local taken = 0
  -- With a throttle a round may defer jobs; the next round then sees the ones behind
  -- them (a few rounds bound one claim's work).
  local rounds = throttle and 4 or 1
  if limit > 0 and redis.call('SISMEMBER', P .. 'paused', typ) == 1 then rounds = 0 end
  for _ = 1, rounds do
    local want = limit - taken
    if want <= 0 then break end
    -- The oldest runnable of each priority level; of those, the `want` that sort first
    -- by run_at - priority x step (ties: higher level, then older).
    local picks = {}
    for p = MAX_PRIORITY, 0, -1 do
      local rk = ready_key(typ, p)
      local got = redis.call('ZRANGEBYSCORE', rk, '-inf', I(now), 'WITHSCORES', 'LIMIT', 0, want)
      for i = 1, #got, 2 do
        picks[#picks + 1] = {got[i], rk, tonumber(got[i + 1]) - p * step, #picks}
      end
    end
    table.sort(picks, function(a, b)
      if a[3] ~= b[3] then return a[3] < b[3] end
      return a[4] < b[4]
    end)
    local deferred = false
    for k = 1, math.min(want, #picks) do
      local id, rk = picks[k][1], picks[k][2]
      local room_at = throttle and throttled(typ, id, tlimit, tperiod)
      if room_at then
        redis.call('ZADD', rk, I(room_at), id)
        redis.call('HSET', P .. 'job:' .. id, 'run_at', I(room_at))
        deferred = true
      else
        claim_job(id, rk, typ, lease)
        taken = taken + 1
      end
    end
    if not deferred then break end
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
  -- ARGV[8] '1': keep as history (queue.retention > 0) with its attempt record;
  -- ARGV[9] '1': its payload goes first (retention_payload).
  leave_order(id, typ, okey, now)  -- while the hash (its key_limit) is still there
  if ARGV[8] == '1' then
    if ARGV[6] ~= '' then redis.call('RPUSH', P .. 'att:' .. id, ARGV[6]) end
    finish_job(jk, id, typ, 'succeeded', now, ARGV[9])
  else
    delete_job(id)
  end
  -- The outbox: follow-up jobs (a handler's actions) are stored in this same script.
  -- ARGV[11] dedupe ttl, ARGV[12] count, then per job 16 fields, a key count and the keys.
  local woke = false
  local pos = 13
  for _ = 1, tonumber(ARGV[12] or '0') do
    local keys = {}
    for k = 1, tonumber(ARGV[pos + 16]) do keys[k] = ARGV[pos + 16 + k] end
    local fid, ftyp = ARGV[pos], ARGV[pos + 1]
    if not dedupe_holder(keys) and redis.call('EXISTS', P .. 'job:' .. fid) == 0 then
      tally(now, ftyp, 1, 0, 0)
      if store_job(now, ARGV[11], fid, ftyp, ARGV[pos + 2], ARGV[pos + 3], ARGV[pos + 4],
                   ARGV[pos + 5], tonumber(ARGV[pos + 6]), ARGV[pos + 7], ARGV[pos + 8],
                   ARGV[pos + 9], ARGV[pos + 10], ARGV[pos + 11], ARGV[pos + 12], keys,
                   ARGV[pos + 13], ARGV[pos + 14], ARGV[pos + 15], ARGV[9]) then
        redis.call('PUBLISH', P .. 'wake', ftyp)
        woke = true
      end
    end
    pos = pos + 17 + #keys
  end
  if woke then return 'woke' end
  return 'ok'
end
if ARGV[6] ~= '' then redis.call('RPUSH', P .. 'att:' .. id, ARGV[6]) end
redis.call('HSET', jk, 'lease_until', '0')
if disposition == 'dead' then
  kill(id, typ, okey, now, ARGV[10])
  return 'ok'
end
if disposition == 'release' then redis.call('HINCRBY', jk, 'attempt', -1) end
index_state(jk, id, 'ready')
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
        kill(id, typ, f[4] or '', now, 'lease expired: worker died or stalled')
        dead = dead + 1
      else
        index_state(jk, id, 'ready')
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
  local parked = tonumber(redis.call('HGET', P .. 'parked', typ) or '0')
  local ready, delayed, at = parked, 0, 0
  for p = 0, MAX_PRIORITY do
    local rk = ready_key(typ, p)
    ready = ready + redis.call('ZCOUNT', rk, '-inf', now)
    delayed = delayed + redis.call('ZCOUNT', rk, '(' .. now, '+inf')
    local oldest = redis.call('ZRANGEBYSCORE', rk, '-inf', now, 'LIMIT', 0, 1)
    if oldest[1] then
      local e = tonumber(redis.call('HGET', P .. 'job:' .. oldest[1], 'enqueued_at') or '0')
      if at == 0 or e < at then at = e end
    end
  end
  out[#out + 1] = typ
  out[#out + 1] = ready
  out[#out + 1] = delayed
  out[#out + 1] = redis.call('ZCARD', P .. 'inflight:' .. typ)
  out[#out + 1] = redis.call('ZCARD', P .. 'dead:' .. typ)
  for _, state in ipairs({'succeeded', 'cancelled', 'replayed'}) do
    out[#out + 1] = tonumber(redis.call('HGET', P .. 'fcount:' .. state, typ) or '0')
  end
  out[#out + 1] = redis.call('SISMEMBER', P .. 'paused', typ)
  out[#out + 1] = at
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

// now id new_id dead_only finpay
constexpr char kRerun[] = R"lua(
return rerun(tonumber(ARGV[1]), ARGV[2], ARGV[3], ARGV[4] == '1', ARGV[5])
)lua";

constexpr char kPurge[] = R"lua(
return purge(ARGV[1])
)lua";

// now type finpay new_id... : the oldest dead jobs, one new id each.
constexpr char kReplayChunk[] = R"lua(
local now = tonumber(ARGV[1])
local done = 0
local n = #ARGV - 3
if n <= 0 then return 0 end
for i, id in ipairs(redis.call('ZRANGE', dead_key(ARGV[2]), 0, n - 1)) do
  if rerun(now, id, ARGV[3 + i], true, ARGV[3])[1] == 'ok' then done = done + 1 end
end
return done
)lua";

// now cut_all cut_payload|'' limit -> {pruned, payloads pruned}
constexpr char kPrune[] = R"lua(
local limit = tonumber(ARGV[4])
local ids = redis.call('ZRANGEBYSCORE', P .. 'finished', '-inf', ARGV[2], 'LIMIT', 0, limit)
for _, id in ipairs(ids) do
  local f = redis.call('HMGET', P .. 'job:' .. id, 'type', 'ix')
  if f[1] and f[2] then redis.call('HINCRBY', P .. 'fcount:' .. f[2], f[1], -1) end
  delete_job(id)
end
local emptied = {}
if ARGV[3] ~= '' then
  emptied = redis.call('ZRANGEBYSCORE', P .. 'finpay', '-inf', ARGV[3], 'LIMIT', 0, limit)
  for _, id in ipairs(emptied) do
    redis.call('HSET', P .. 'job:' .. id, 'payload', 'null', 'headers', '{}', 'payload_pruned', '1')
    redis.call('ZREM', P .. 'finpay', id)
  end
end
return {#ids, #emptied}
)lua";

// drive before|'' limit budget now state type source from to q
//   -> {next_cursor|'', total, {id...}, {{hgetall, {}}...}}
constexpr char kListJobs[] = R"lua(
local drive, limit, budget, now = ARGV[1], tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local st, typ, src, from, to, q = ARGV[6], ARGV[7], ARGV[8], tonumber(ARGV[9]), tonumber(ARGV[10]),
  ARGV[11]
local max = '+inf'
if ARGV[2] ~= '' then max = '(' .. ARGV[2] end
local ids, jobs = {}, {}
local scanned, last, more = 0, '', false
local offset = 0
while not more do
  local batch = redis.call('ZREVRANGEBYSCORE', drive, max, '-inf', 'WITHSCORES', 'LIMIT', offset, 256)
  if #batch == 0 then break end
  offset = offset + #batch / 2
  for i = 1, #batch, 2 do
    if scanned >= budget or #ids >= limit then
      more = true
      break
    end
    scanned = scanned + 1
    local id = batch[i]
    last = batch[i + 1]
    local jk = P .. 'job:' .. id
    local f = redis.call('HMGET', jk, 'ix', 'type', 'source', 'enqueued_at', 'run_at')
    local ok = f[1] ~= false
    if ok and st == 'delayed' then
      ok = f[1] == 'ready' and tonumber(f[5]) > now
    elseif ok and st ~= '' then
      ok = f[1] == st
    end
    if ok and typ ~= '' then ok = f[2] == typ end
    if ok and src ~= '' then ok = f[3] == src end
    if ok and from > 0 then ok = tonumber(f[4]) >= from end
    if ok and to > 0 then ok = tonumber(f[4]) < to end
    if ok and q ~= '' then
      local payload = redis.call('HGET', jk, 'payload')
      ok = payload ~= false and string.find(payload, q, 1, true) ~= nil
    end
    if ok then
      ids[#ids + 1] = id
      jobs[#jobs + 1] = {redis.call('HGETALL', jk), {}}
    end
  end
end
if not more then last = '' end
return {last, redis.call('ZCARD', drive), ids, jobs}
)lua";

// now id -> 'ok' | 'notfound' | the state it is in
constexpr char kRunNow[] = R"lua(
local now, id = tonumber(ARGV[1]), ARGV[2]
local jk = P .. 'job:' .. id
local f = redis.call('HMGET', jk, 'ix', 'state', 'type', 'run_at')
if not f[1] then return 'notfound' end
if f[1] ~= 'ready' then return f[1] end
if tonumber(f[4]) > now then
  redis.call('HSET', jk, 'run_at', I(now))
  if f[2] == 'ready' then
    redis.call('ZADD', ready_key(f[3], job_priority(jk)), I(now), id)
    redis.call('PUBLISH', P .. 'wake', f[3])
  end
end
return 'ok'
)lua";

// now id finpay -> 'ok' | 'notfound' | the state it is in
constexpr char kCancel[] = R"lua(
return cancel_waiting(ARGV[2], tonumber(ARGV[1]), ARGV[3], '')
)lua";

// type 1|0
constexpr char kPause[] = R"lua(
if ARGV[2] == '1' then return redis.call('SADD', P .. 'paused', ARGV[1]) end
redis.call('PUBLISH', P .. 'wake', ARGV[1])
return redis.call('SREM', P .. 'paused', ARGV[1])
)lua";

// entry_json -> seq. The newest 100000 entries are kept.
constexpr char kAuditAdd[] = R"lua(
local seq = redis.call('INCR', P .. 'audit:seq')
redis.call('ZADD', P .. 'audit', seq, I(seq) .. ' ' .. ARGV[1])
redis.call('ZREMRANGEBYRANK', P .. 'audit', 0, -100001)
return seq
)lua";

// before|'' limit -> {member...} newest first
constexpr char kAuditList[] = R"lua(
local max = '+inf'
if ARGV[1] ~= '' then max = '(' .. ARGV[1] end
return redis.call('ZREVRANGEBYSCORE', P .. 'audit', max, '-inf', 'LIMIT', 0, tonumber(ARGV[2]))
)lua";

// Kept jobs per time bucket: finished ones by finish time, dead ones by death time.
constexpr char kHistory[] = R"lua(
local from, step, n = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local out = {}
for i = 0, n - 1 do
  local lo, hi = I(from + i * step), '(' .. I(from + (i + 1) * step)
  out[#out + 1] = redis.call('ZCOUNT', P .. 'finished', lo, hi)
  out[#out + 1] = redis.call('ZCOUNT', P .. 'dead', lo, hi)
end
return out
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
    {"rerun", kRerun},
    {"purge", kPurge},
    {"replay_chunk", kReplayChunk},
    {"purge_chunk", kPurgeChunk},
    {"throughput", kThroughput},
    {"prune", kPrune},
    {"list_jobs", kListJobs},
    {"run_now", kRunNow},
    {"cancel", kCancel},
    {"pause", kPause},
    {"audit_add", kAuditAdd},
    {"audit_list", kAuditList},
    {"history", kHistory},
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
