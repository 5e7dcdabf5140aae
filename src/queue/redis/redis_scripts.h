// The Lua scripts of the redis queue backend. Every state change of a job is one script,
// so it is atomic on the server: no client crash or lost reply can leave a job half-moved
// (e.g. stored without its dedupe key, or claimed without a lease). The data model is in
// docs/redis-queue.md.
#pragma once

#include <string>

namespace firebreak::redis {

// Prefix of every key the queue writes.
inline constexpr char kKeyPrefix[] = "fb:";
// Channel a commit publishes the job type on when it made a job runnable now.
inline constexpr char kWakeChannel[] = "fb:wake";

enum class Script {
  kEnqueue,      // now max_depth dedupe_ttl_ms id type source ordering_key max_attempts
                 // enqueued_at run_at payload headers traceparent n_keys key...
                 //   -> {"ok","1"|"0" (runnable now)} | {"dup",holder} | {"full",""}
                 //      | {"exists",id}
  kClaim,        // now n (type limit lease_ms)*n -> flat {id attempt type source dedupe_key
                 //   payload headers traceparent ordering_key max_attempts enqueued_at run_at}*
  kFinish,       // now id attempt disposition run_at record_json busy_ms
                 //   [dedupe_ttl_ms n follow-ups...] -> "ok"|"woke"|"stale"
  kSweep,        // now limit -> {requeued dead more}
  kStats,        // now -> flat {type ready delayed in_flight dead}*
  kGetJob,       // id -> {hgetall-flat, attempts}
  kListDead,     // type|"" limit cursor_score|"" cursor_id -> flat {id dead_at}*
  kReplay,       // now id -> 1|0
  kPurge,        // id -> 1|0
  kReplayChunk,  // now type|"" n -> replayed
  kPurgeChunk,   // type|"" n -> purged
  kThroughput,   // now first_minute -> {since, ("a:"|"f:"|"b:" .. type, count)*}
};
inline constexpr int kScriptCount = 12;

const std::string& ScriptSource(Script script);
const char* ScriptName(Script script);

}  // namespace firebreak::redis
