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
                 // enqueued_at run_at payload headers traceparent parent_id replay_of
                 // search_keys('\n'-joined) key_limit priority debounce_key finpay
                 // n_keys key...
                 //   -> {"ok","1"|"0" (runnable now)} | {"dup",holder} | {"full",""}
                 //      | {"exists",id}
  kClaim,        // now n (type limit lease_ms priority_step_ms throttle_limit
                 //   throttle_period_ms global_limit)*n -> flat {id attempt type
                 //   source dedupe_key
                 //   payload headers traceparent ordering_key max_attempts enqueued_at run_at}*
  kFinish,       // now id attempt disposition run_at record_json busy_ms keep finpay
                 //   last_error dedupe_ttl_ms n follow-ups... -> "ok"|"woke"|"stale"
  kSweep,        // now limit -> {requeued dead more}
  kStats,        // now -> flat {type ready delayed in_flight dead succeeded cancelled
                 //   replayed paused oldest_ready_enqueued_at}*
  kGetJob,       // id -> {hgetall-flat, attempts}
  kListDead,     // type|"" limit cursor_score|"" cursor_id -> flat {id dead_at}*
  kRerun,        // now id new_id dead_only finpay -> {'ok'}|{'notfound'}|{'state',s,as}|{'pruned'}
  kPurge,        // id -> 1|0
  kReplayChunk,  // now type|"" finpay new_id... -> replayed
  kPurgeChunk,   // type|"" n -> purged
  kThroughput,   // now first_minute -> {since, ("a:"|"f:"|"b:" .. type, count)*}
  kPrune,        // now cut_all cut_payload|"" limit -> {pruned, payloads_pruned}
  kListJobs,     // see the script
  kRunNow,       // now id -> "ok"|"notfound"|state
  kCancel,       // now id finpay -> "ok"|"notfound"|state
  kPause,        // type 1|0
  kAuditAdd,     // entry_json -> seq
  kAuditList,    // before|"" limit -> {"<seq> <json>"...}
  kHistory,      // from_ms bucket_ms n -> flat {finished dead}*n
};
inline constexpr int kScriptCount = 20;

const std::string& ScriptSource(Script script);
const char* ScriptName(Script script);

}  // namespace firebreak::redis
