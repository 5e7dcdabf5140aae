#include "queue/redis/redis_queue.h"

#include "common/crypto.h"
#include "queue/job_record.h"

#include <hiredis/hiredis.h>

#include <algorithm>
#include <charconv>
#include <map>
#include <nlohmann/json.hpp>
#include <string_view>

#include "queue/throughput.h"
#include "telemetry/log.h"

namespace firebreak {
namespace {

constexpr int kAdminChunk = 500;
constexpr int kMaxDeadPage = 1000;
// Rows one ListJobs script examines: the script blocks Redis while it runs (~1 µs a row).
constexpr int kRedisListScanBudget = 5000;
constexpr size_t kClaimFields = 12;  // per job in the claim script's reply

int64_t ToInt(std::string_view text) {
  int64_t value = 0;
  std::from_chars(text.data(), text.data() + text.size(), value);
  return value;
}

const char* DispositionName(Disposition disposition) {
  switch (disposition) {
    case Disposition::kSucceeded:
      return "succeeded";
    case Disposition::kRetry:
      return "retry";
    case Disposition::kDead:
      return "dead";
    case Disposition::kRelease:
      return "release";
  }
  return "";
}

std::string AttemptJson(const AttemptRecord& record) {
  return nlohmann::json{{"attempt", record.attempt},
                        {"started_at_ms", record.started_at_ms},
                        {"duration_ms", record.duration_ms},
                        {"outcome", record.outcome},
                        {"error", record.error}}
      .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

AttemptRecord ParseAttempt(std::string_view text) {
  AttemptRecord record;
  nlohmann::json json = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!json.is_object()) {
    record.outcome = "unknown";
    record.error = std::string(text);
    return record;
  }
  record.attempt = json.value("attempt", 0);
  record.started_at_ms = json.value("started_at_ms", int64_t{0});
  record.duration_ms = json.value("duration_ms", int64_t{0});
  record.outcome = json.value("outcome", std::string());
  record.error = json.value("error", std::string());
  return record;
}

JobState StateFromName(std::string_view name) {
  JobState state = JobState::kReady;
  // Anything else is "ready", or "parked" behind an older job of its ordering key.
  if (!ParseJobState(name, state)) state = JobState::kReady;
  return state;
}

// The kGetJob reply (and each job of kListJobs'): {HGETALL flat, attempts}. kNotFound
// for an empty hash.
Result<Job> JobFromReply(const std::string& id, const redisReply* reply) {
  const redisReply* fields = redis::ReplyElement(reply, 0);
  const redisReply* attempts = redis::ReplyElement(reply, 1);
  if (redis::ReplyLength(fields) == 0) return NotFound("job " + id + " not found");
  std::map<std::string, std::string, std::less<>> f;
  for (size_t i = 0; i + 1 < redis::ReplyLength(fields); i += 2) {
    f[redis::ReplyString(redis::ReplyElement(fields, i))] =
        redis::ReplyString(redis::ReplyElement(fields, i + 1));
  }
  auto get = [&](std::string_view key) -> std::string {
    auto it = f.find(key);
    return it == f.end() ? std::string() : it->second;
  };
  Job job;
  job.id = id;
  job.type = get("type");
  job.source = get("source");
  job.dedupe_key = get("dedupe_key");
  job.payload_json = get("payload");
  job.headers_json = get("headers");
  job.traceparent = get("traceparent");
  job.ordering_key = get("ordering_key");
  job.key_limit = std::max<int>(1, static_cast<int>(ToInt(get("key_limit"))));
  job.priority = static_cast<int>(ToInt(get("priority")));
  job.state = StateFromName(get("state"));
  job.attempt = static_cast<int>(ToInt(get("attempt")));
  job.max_attempts = static_cast<int>(ToInt(get("max_attempts")));
  job.enqueued_at_ms = ToInt(get("enqueued_at"));
  job.run_at_ms = ToInt(get("run_at"));
  job.lease_until_ms = ToInt(get("lease_until"));
  job.finished_at_ms = ToInt(get("finished_at"));
  job.last_error = get("last_error");
  job.parent_id = get("parent_id");
  job.replay_of = get("replay_of");
  job.replayed_as = get("replayed_as");
  job.search_keys = SplitSearchKeys(get("search_keys"));
  job.payload_pruned = get("payload_pruned") == "1";
  for (size_t i = 0; i < redis::ReplyLength(attempts); ++i) {
    job.attempts.push_back(ParseAttempt(redis::ReplyString(redis::ReplyElement(attempts, i))));
  }
  return job;
}

// Error replies with which Redis says it takes no writes now: the store is not ready
// (rather than the script or the call being wrong).
bool RefusesWrites(std::string_view error) {
  for (std::string_view prefix :
       {"OOM", "MISCONF", "READONLY", "LOADING", "BUSY", "MASTERDOWN", "NOREPLICAS"}) {
    if (error.substr(0, prefix.size()) == prefix) return true;
  }
  return false;
}

// The key the health probe writes (and lets expire).
constexpr char kProbeKey[] = "fb:probe";

}  // namespace

RedisQueue::RedisQueue(const QueueConfig& config, redis::Address address, Clock& clock,
                       const RedisQueueOptions& options)
    : config_(config),
      address_(std::move(address)),
      clock_(clock),
      options_(options),
      pending_(config.timeout, Unavailable("queue is closed"), &RedisQueue::FailOp),
      health_("redis " + address_.ToString(), config.timeout, clock) {}

Result<std::unique_ptr<RedisQueue>> RedisQueue::Open(const QueueConfig& config, Clock& clock,
                                                     const RedisQueueOptions& options) {
  Result<redis::Address> address = redis::ParseRedisUrl(config.url);
  if (!address.ok()) return address.status();
  std::unique_ptr<RedisQueue> queue(new RedisQueue(config, *address, clock, options));
  // The first connection is made here so a wrong URL or a down Redis fails `run` at once.
  Result<Session> session = queue->Connect(config.timeout);
  // Unreachable and hung alike are kUnavailable here: `run` waits for the store either way.
  if (!session.ok()) return Unavailable(session.status().message());
  queue->CheckPersistence(*session->connection);
  queue->session_ = std::move(session).value();
  queue->last_sweep_ = std::chrono::steady_clock::now() - options.sweep_interval;
  queue->dispatcher_ = std::thread([q = queue.get()] { q->DispatchLoop(); });
  return queue;
}

RedisQueue::~RedisQueue() { Close(); }

Result<RedisQueue::Session> RedisQueue::Connect(std::chrono::milliseconds command_timeout) {
  auto connection =
      redis::Connection::Open(address_, std::min(options_.connect_timeout, config_.timeout),
                              command_timeout);
  if (!connection.ok()) return connection.status();
  Session session;
  session.connection = std::move(connection).value();
  // Redis forgets loaded scripts when it restarts, so they are loaded on every connect.
  for (int i = 0; i < redis::kScriptCount; ++i) {
    session.connection->Append(
        {"SCRIPT", "LOAD", redis::ScriptSource(static_cast<redis::Script>(i))});
  }
  for (int i = 0; i < redis::kScriptCount; ++i) {
    Result<redis::Reply> reply = session.connection->GetReply();
    if (!reply.ok()) return reply.status();
    if (redis::IsError(reply->get())) {
      return Internal(std::string("redis: cannot load script ") +
                      redis::ScriptName(static_cast<redis::Script>(i)) + ": " +
                      redis::ReplyString(reply->get()));
    }
    session.shas.push_back(redis::ReplyString(reply->get()));
  }
  return session;
}

void RedisQueue::CheckPersistence(redis::Connection& connection) {
  std::string shortfall;
  Result<redis::Reply> aof = connection.Command({"CONFIG", "GET", "appendonly"});
  Result<redis::Reply> fsync = connection.Command({"CONFIG", "GET", "appendfsync"});
  if (!aof.ok() || !fsync.ok() || redis::IsError(aof->get()) || redis::IsError(fsync->get())) {
    const redisReply* failed = aof.ok() && redis::IsError(aof->get()) ? aof->get()
                               : fsync.ok()                            ? fsync->get()
                                                                       : nullptr;
    shortfall = "cannot read Redis persistence settings (CONFIG GET refused: " +
                redis::ReplyString(failed) + "); make sure it runs with appendonly yes and " +
                (config_.durability == Durability::kFsync ? "appendfsync always"
                                                          : "appendfsync everysec or always");
  } else {
    std::string appendonly = redis::ReplyString(redis::ReplyElement(aof->get(), 1));
    std::string appendfsync = redis::ReplyString(redis::ReplyElement(fsync->get(), 1));
    const bool fsync_wanted = config_.durability == Durability::kFsync;
    if (appendonly != "yes") {
      shortfall = std::string("Redis runs without AOF (appendonly ") + appendonly +
                  "): accepted jobs are lost when Redis restarts; queue.durability = \"" +
                  (fsync_wanted ? "fsync" : "process") + "\" needs appendonly yes with " +
                  (fsync_wanted ? "appendfsync always" : "appendfsync everysec or always");
    } else if (fsync_wanted && appendfsync != "always") {
      shortfall = "Redis fsyncs its AOF with appendfsync " + appendfsync +
                  ": a power loss can drop acknowledged jobs; queue.durability = \"fsync\" "
                  "needs appendfsync always";
    } else if (!fsync_wanted && appendfsync == "no") {
      shortfall =
          "Redis leaves AOF fsync to the OS (appendfsync no): a crash of the Redis host can "
          "drop acknowledged jobs; queue.durability = \"process\" needs appendfsync everysec";
    }
  }
  std::lock_guard lock(durability_mu_);
  if (shortfall != durability_shortfall_ && !shortfall.empty()) {
    log::Warn("queue durability degraded: " + shortfall,
              {{"redis", address_.ToString()}, {"reason", shortfall}});
  } else if (shortfall.empty() && !durability_shortfall_.empty()) {
    log::Info("queue durability restored: Redis persistence now meets queue.durability",
              {{"redis", address_.ToString()}});
  }
  durability_shortfall_ = shortfall;
}

std::string RedisQueue::DurabilityShortfall() {
  std::lock_guard lock(durability_mu_);
  return durability_shortfall_;
}

void RedisQueue::AppendScript(Session& session, redis::Script script,
                              std::vector<std::string> args) {
  std::vector<std::string> argv;
  argv.reserve(args.size() + 3);
  argv.push_back("EVALSHA");
  argv.push_back(session.shas[static_cast<size_t>(script)]);
  argv.push_back("0");
  for (std::string& a : args) argv.push_back(std::move(a));
  session.connection->Append(argv);
}

// ---- asynchronous side: the dispatcher thread -------------------------------------

void RedisQueue::FailOp(Op& op, const Status& status) {
  std::visit(
      [&](auto& o) {
        using T = std::decay_t<decltype(o)>;
        if constexpr (std::is_same_v<T, EnqueueOp>) {
          EnqueueResult result;
          result.status = status;
          o.done(std::move(result));
        } else {
          o.done(status);
        }
      },
      op);
}

void RedisQueue::Enqueue(NewJob job, EnqueueCallback done) {
  PrepareNewJob(job, config_.redact);
  pending_.Submit(EnqueueOp{std::move(job), std::move(done)},
                  std::chrono::steady_clock::now() + config_.timeout);
}

void RedisQueue::Claim(std::vector<ClaimSlots> slots, ClaimCallback done) {
  pending_.Submit(ClaimOp{std::move(slots), std::move(done)});
}

void RedisQueue::Finish(JobFinish finish, StatusCallback done) {
  PrepareFinish(finish, config_.redact);
  pending_.Submit(FinishOp{std::move(finish), std::move(done)});
}

void RedisQueue::DispatchLoop() {
  std::vector<Op> batch;
  const size_t max_batch = static_cast<size_t>(std::max(options_.max_batch, 1));
  for (;;) {
    if (!pending_.Take(batch, max_batch, last_sweep_ + options_.sweep_interval)) return;
    const bool sweep = std::chrono::steady_clock::now() - last_sweep_ >= options_.sweep_interval;
    const bool probe = health_.TakeProbe();
    if (batch.empty() && !sweep && !probe) continue;
    if (sweep) last_sweep_ = std::chrono::steady_clock::now();
      if (Status connected = EnsureConnected(); !connected.ok()) {
      health_.Failed(connected);
      for (Op& op : batch) RunQueueCallback([&] { FailOp(op, connected); });
    } else {
      RunBatch(batch, sweep && !closed_.load(), probe);
    }
    batch.clear();
  }
}

Status RedisQueue::EnsureConnected() {
  if (session_.connection && !session_.connection->broken()) return Status::Ok();
  session_ = {};
  auto now = std::chrono::steady_clock::now();
  if (now < next_connect_attempt_) return last_connect_error_;
  Result<Session> session = Connect(config_.timeout);
  if (!session.ok()) {
    // Exponential backoff with full jitter, so many processes don't reconnect in step.
    backoff_ = std::clamp(backoff_ * 2, options_.reconnect_min, options_.reconnect_max);
    std::uniform_int_distribution<int64_t> jitter(options_.reconnect_min.count() / 2,
                                                  backoff_.count());
    next_connect_attempt_ = now + std::chrono::milliseconds(jitter(rng_));
    if (last_connect_error_.ok()) {
      log::Error("redis unreachable; retrying with backoff",
                 {{"redis", address_.ToString()}, {"error", session.status().message()}});
    }
    last_connect_error_ = Unavailable("queue unreachable: " + session.status().message());
    return last_connect_error_;
  }
  CheckPersistence(*session->connection);
  if (!last_connect_error_.ok()) log::Info("redis reconnected", {{"redis", address_.ToString()}});
  last_connect_error_ = Status::Ok();
  backoff_ = std::chrono::milliseconds(0);
  session_ = std::move(session).value();
  return Status::Ok();
}

void RedisQueue::RunBatch(std::vector<Op>& batch, bool sweep, bool probe) {
  const int64_t now = clock_.NowMs();
  const std::string now_text = std::to_string(now);
  // Operations refused before reaching Redis answer without a round trip.
  std::vector<bool> sent(batch.size(), false);
  for (size_t i = 0; i < batch.size(); ++i) {
    Op& op = batch[i];
    if (auto* e = std::get_if<EnqueueOp>(&op)) {
      const NewJob& job = e->job;
      if (job.id.empty() || job.type.empty()) continue;
      std::vector<std::string> args = {
          now_text,
          std::to_string(config_.max_depth),
          std::to_string(std::max<int64_t>(1, config_.dedupe_ttl.count())),
          job.id,
          job.type,
          job.source,
          job.ordering_key,
          std::to_string(job.max_attempts),
          std::to_string(job.enqueued_at_ms > 0 ? job.enqueued_at_ms : now),
          std::to_string(job.run_at_ms > 0 ? job.run_at_ms
                                           : (job.enqueued_at_ms > 0 ? job.enqueued_at_ms : now)),
          job.payload_json,
          job.headers_json,
          job.traceparent,
          job.parent_id,
          job.replay_of,
          JoinSearchKeys(IndexedSearchKeys(job)),
          std::to_string(std::max(1, job.key_limit)),
          std::to_string(std::clamp(job.priority, 0, kMaxPriority)),
          job.debounce_key,
          PrunesPayloadFirst() ? "1" : "0",
          ""};
      int keys = 0;
      for (const std::string& key : job.dedupe_keys) {
        if (key.empty()) continue;
        args.push_back(key);
        ++keys;
      }
      args[20] = std::to_string(keys);
      AppendScript(session_, redis::Script::kEnqueue, std::move(args));
    } else if (auto* c = std::get_if<ClaimOp>(&op)) {
      bool valid = true;
      std::vector<std::string> args = {now_text, "0"};
      int slots = 0;
      for (const ClaimSlots& slot : c->slots) {
        if (slot.limit < 0 || slot.lease_ms <= 0) valid = false;
        if (slot.limit <= 0) continue;
        args.insert(args.end(), {slot.type, std::to_string(slot.limit),
                                 std::to_string(slot.lease_ms),
                                 std::to_string(slot.priority_step_ms),
                                 std::to_string(slot.throttle_limit),
                                 std::to_string(slot.throttle_period_ms),
                                 std::to_string(slot.global_limit)});
        ++slots;
      }
      if (!valid || slots == 0) continue;
      args[1] = std::to_string(slots);
      AppendScript(session_, redis::Script::kClaim, std::move(args));
    } else if (auto* f = std::get_if<FinishOp>(&op)) {
      const JobFinish& finish = f->finish;
      if (std::any_of(finish.follow_ups.begin(), finish.follow_ups.end(),
                      [](const NewJob& job) { return job.id.empty() || job.type.empty(); })) {
        continue;  // refused below without a round trip; the job stays in flight
      }
      AttemptRecord record = finish.record;
      record.attempt = finish.attempt;  // filed under the attempt the job held
      std::vector<std::string> args = {
          now_text,
          finish.job_id,
          std::to_string(finish.attempt),
          DispositionName(finish.disposition),
          std::to_string(finish.run_at_ms),
          finish.keep_record || finish.disposition != Disposition::kRelease ? AttemptJson(record)
                                                                            : std::string(),
          std::to_string(std::max<int64_t>(0, record.duration_ms)),
          config_.retention.count() > 0 ? "1" : "0",
          PrunesPayloadFirst() ? "1" : "0",
          finish.disposition == Disposition::kDead ? record.error : std::string(),
          std::to_string(std::max<int64_t>(1, config_.dedupe_ttl.count())),
          "0"};
      if (finish.disposition == Disposition::kSucceeded && !finish.follow_ups.empty()) {
        args.back() = std::to_string(finish.follow_ups.size());
        for (const NewJob& job : finish.follow_ups) {
          const int64_t enqueued_at = job.enqueued_at_ms > 0 ? job.enqueued_at_ms : now;
          args.insert(args.end(),
                      {job.id, job.type, job.source, job.ordering_key,
                       std::to_string(job.max_attempts), std::to_string(enqueued_at),
                       std::to_string(job.run_at_ms > 0 ? job.run_at_ms : enqueued_at),
                       job.payload_json, job.headers_json, job.traceparent, job.parent_id,
                       job.replay_of, JoinSearchKeys(IndexedSearchKeys(job)),
                       std::to_string(std::max(1, job.key_limit)),
                       std::to_string(std::clamp(job.priority, 0, kMaxPriority)),
                       job.debounce_key, ""});
          size_t count_at = args.size() - 1;
          int keys = 0;
          for (const std::string& key : job.dedupe_keys) {
            if (key.empty()) continue;
            args.push_back(key);
            ++keys;
          }
          args[count_at] = std::to_string(keys);
        }
      }
      AppendScript(session_, redis::Script::kFinish, std::move(args));
    }
    sent[i] = true;
  }
  if (sweep) {
    AppendScript(session_, redis::Script::kSweep,
                 {now_text, std::to_string(options_.sweep_limit)});
    AppendScript(session_, redis::Script::kPrune,
                 {now_text, std::to_string(now - config_.retention.count()),
                  PrunesPayloadFirst()
                      ? std::to_string(now - config_.retention_payload.count())
                      : std::string(),
                  std::to_string(options_.sweep_limit)});
  }
  if (probe) session_.connection->Append({"SET", kProbeKey, now_text, "PX", "60000"});

  bool wake = false;
  bool wrote = false;  // a reply proves Redis stored something (StoreHealth::Wrote)
  Status refused;      // Redis said it takes no writes now
  Status io;  // once a read fails, every later reply of the pipeline is lost too
  auto next_reply = [&]() -> Result<redis::Reply> {
    if (!io.ok()) return io;
    Result<redis::Reply> reply = session_.connection->GetReply();
    if (!reply.ok()) {
      io = reply.status();
      // Reported before the callbacks run: /readyz after a 503 must not still say ready.
      health_.Failed(Unavailable("redis " + address_.ToString() + " unreachable: " + io.message()));
      return io;
    }
    if (redis::IsError(reply->get())) {
      std::string error = redis::ReplyString(reply->get());
      if (error.rfind("NOSCRIPT", 0) == 0) {
        // Redis restarted under a live connection (or SCRIPT FLUSH): a fresh connection
        // reloads the scripts. Dropped after this batch's replies are read.
        io = Unavailable("redis: " + error);
      }
      if (RefusesWrites(error) && refused.ok()) {
        refused = Unavailable("redis refuses writes: " + error);
        health_.Failed(refused);
      }
      return Unavailable("redis: " + error);
    }
    return reply;
  };

  for (size_t i = 0; i < batch.size(); ++i) {
    Op& op = batch[i];
    if (auto* e = std::get_if<EnqueueOp>(&op)) {
      EnqueueResult result;
      if (!sent[i]) {
        result.status = InvalidArgument("a job needs an id and a type");
      } else if (Result<redis::Reply> reply = next_reply(); !reply.ok()) {
        result.status = reply.status();
      } else {
        std::string kind = redis::ReplyString(redis::ReplyElement(reply->get(), 0));
        std::string value = redis::ReplyString(redis::ReplyElement(reply->get(), 1));
        if (kind == "ok") {
          result.outcome = EnqueueOutcome::kAccepted;
          result.job_id = e->job.id;
          wrote = true;
          if (value == "1") wake = true;
        } else if (kind == "dup") {
          result.outcome = EnqueueOutcome::kDuplicate;
          result.job_id = value;
        } else if (kind == "full") {
          result.outcome = EnqueueOutcome::kOverloaded;
        } else if (kind == "exists") {
          result.status =
              Status(StatusCode::kAlreadyExists, "job id " + e->job.id + " already exists");
        } else {
          result.status = Internal("redis enqueue: unexpected reply \"" + kind + "\"");
        }
      }
      RunQueueCallback([&] { e->done(std::move(result)); });
    } else if (auto* c = std::get_if<ClaimOp>(&op)) {
      if (!sent[i]) {
        bool invalid = std::any_of(c->slots.begin(), c->slots.end(), [](const ClaimSlots& s) {
          return s.limit < 0 || s.lease_ms <= 0;
        });
        RunQueueCallback([&] {
          if (invalid) {
            c->done(InvalidArgument("a claim needs limit >= 0 and lease_ms > 0"));
          } else {
            c->done(std::vector<Job>{});
          }
        });
        continue;
      }
      Result<redis::Reply> reply = next_reply();
      if (!reply.ok()) {
        RunQueueCallback([&] { c->done(reply.status()); });
        continue;
      }
      std::vector<Job> jobs;
      const redisReply* r = reply->get();
      for (size_t k = 0; k + kClaimFields <= redis::ReplyLength(r); k += kClaimFields) {
        auto field = [&](size_t n) { return redis::ReplyString(redis::ReplyElement(r, k + n)); };
        Job job;
        job.id = field(0);
        job.attempt = static_cast<int>(ToInt(field(1)));
        job.type = field(2);
        job.source = field(3);
        job.dedupe_key = field(4);
        job.payload_json = field(5);
        job.headers_json = field(6);
        job.traceparent = field(7);
        job.ordering_key = field(8);
        job.max_attempts = static_cast<int>(ToInt(field(9)));
        job.enqueued_at_ms = ToInt(field(10));
        job.run_at_ms = ToInt(field(11));
        job.state = JobState::kInFlight;
        for (const ClaimSlots& slot : c->slots) {
          if (slot.type == job.type) job.lease_until_ms = now + slot.lease_ms;
        }
        jobs.push_back(std::move(job));
      }
      if (!jobs.empty()) wrote = true;
      RunQueueCallback([&] { c->done(std::move(jobs)); });
    } else if (auto* f = std::get_if<FinishOp>(&op)) {
      if (!sent[i]) {
        RunQueueCallback([&] { f->done(InvalidArgument("a follow-up job needs an id and a type")); });
        continue;
      }
      Result<redis::Reply> reply = next_reply();
      if (!reply.ok()) {
        RunQueueCallback([&] { f->done(reply.status()); });
        continue;
      }
      std::string outcome = redis::ReplyString(reply->get());
      if (outcome == "stale") {
        RunQueueCallback([&] {
          f->done(FailedPrecondition("job " + f->finish.job_id + " does not hold attempt " +
                                     std::to_string(f->finish.attempt) +
                                     " (lease expired or already finished)"));
        });
        continue;
      }
      wrote = true;
      if (outcome == "woke") wake = true;
      RunQueueCallback([&] { f->done(Status::Ok()); });
    }
  }
  if (sweep) {
    Result<redis::Reply> reply = next_reply();
    if (reply.ok()) {
      int64_t requeued = redis::ReplyInteger(redis::ReplyElement(reply->get(), 0));
      int64_t dead = redis::ReplyInteger(redis::ReplyElement(reply->get(), 1));
      if (requeued > 0) wake = true;
      if (requeued > 0 || dead > 0) {
        log::Warn("expired leases reclaimed", {{"requeued", requeued}, {"dead_lettered", dead}});
      }
      if (redis::ReplyInteger(redis::ReplyElement(reply->get(), 2)) != 0) {
        last_sweep_ = std::chrono::steady_clock::time_point{};  // more expired: sweep again
      }
    }
    Result<redis::Reply> pruned = next_reply();
    if (pruned.ok()) {
      const int64_t jobs = redis::ReplyInteger(redis::ReplyElement(pruned->get(), 0));
      const int64_t payloads = redis::ReplyInteger(redis::ReplyElement(pruned->get(), 1));
      if (jobs >= options_.sweep_limit || payloads >= options_.sweep_limit) {
        last_sweep_ = std::chrono::steady_clock::time_point{};  // more to prune
      }
    }
  }
  if (probe && next_reply().ok()) wrote = true;
  if (!io.ok()) {
    session_.connection.reset();
    // Reconnect after a short backoff rather than at once: what waits meanwhile fails
    // fast instead of behind another blocking connect to a Redis that just failed.
    last_connect_error_ = Unavailable("queue unreachable: " + io.message());
    next_connect_attempt_ = std::chrono::steady_clock::now() + options_.reconnect_min;
  } else if (!refused.ok()) {
    log::WriteLimited(log::Level::kWarn, refused.message(), "redis refuses writes",
                      {{"redis", address_.ToString()}, {"error", refused.message()}});
  } else if (wrote) {
    health_.Wrote();
  }
  if (wake) wakeup_.Run();
}

// ---- wakeups from other processes ---------------------------------------------------

void RedisQueue::SetWakeup(std::function<void()> wakeup) {
  wakeup_.Set(std::move(wakeup));
  std::lock_guard lock(close_mu_);
  if (!subscriber_.joinable() && !closed_.load()) {
    subscriber_ = std::thread([this] { SubscribeLoop(); });
  }
}

void RedisQueue::SubscribeLoop() {
  std::chrono::milliseconds backoff = options_.reconnect_min;
  while (!closed_.load()) {
    // No command timeout: the subscriber waits for messages for as long as it takes;
    // Close() unblocks it by shutting the socket down.
    auto connection =
        redis::Connection::Open(address_, options_.connect_timeout, std::chrono::milliseconds(0));
    if (connection.ok()) {
      std::unique_ptr<redis::Connection> owned = std::move(connection).value();
      {
        std::lock_guard lock(subscriber_mu_);
        if (closed_.load()) return;
        subscriber_connection_ = owned.get();
      }
      Result<redis::Reply> subscribed = owned->Command({"SUBSCRIBE", redis::kWakeChannel});
      if (subscribed.ok()) backoff = options_.reconnect_min;
      while (subscribed.ok() && !closed_.load()) {
        Result<redis::Reply> message = owned->GetReply();
        if (!message.ok()) break;
        wakeup_.Run();
      }
      std::lock_guard lock(subscriber_mu_);
      subscriber_connection_ = nullptr;
    }
    // The worker also polls, so a lost subscription only delays claims until then.
    std::unique_lock lock(subscriber_sleep_mu_);
    subscriber_sleep_.wait_for(lock, backoff, [&] { return closed_.load(); });
    backoff = std::min(backoff * 2, options_.reconnect_max);
  }
}

// ---- synchronous side: tools and the admin API -------------------------------------

Result<redis::Reply> RedisQueue::RunAdminScript(redis::Script script,
                                                std::vector<std::string> args) {
  if (closed_.load()) return Unavailable("queue is closed");
  for (int tries = 0; tries < 2; ++tries) {
    if (!admin_.connection || admin_.connection->broken()) {
      // Tools may run long scripts (replay of a big chunk): a longer timeout than the
      // dispatcher's.
      Result<Session> session = Connect(std::max(config_.timeout,
                                                 std::chrono::milliseconds(30'000)));
      if (!session.ok()) return Unavailable("queue unreachable: " + session.status().message());
      admin_ = std::move(session).value();
    }
    AppendScript(admin_, script, args);
    Result<redis::Reply> reply = admin_.connection->GetReply();
    if (!reply.ok()) {
      admin_ = {};
      continue;  // one retry on a fresh connection (Redis may have restarted)
    }
    if (redis::IsError(reply->get())) {
      std::string error = redis::ReplyString(reply->get());
      if (error.rfind("NOSCRIPT", 0) == 0) {
        admin_ = {};
        continue;
      }
      return Internal("redis " + std::string(redis::ScriptName(script)) + ": " + error);
    }
    return reply;
  }
  return Unavailable("queue unreachable: redis " + address_.ToString());
}

Result<std::vector<TypeDepth>> RedisQueue::Stats() {
  std::lock_guard lock(admin_mu_);
  Result<redis::Reply> reply =
      RunAdminScript(redis::Script::kStats, {std::to_string(clock_.NowMs())});
  if (!reply.ok()) return reply.status();
  std::vector<TypeDepth> out;
  const redisReply* r = reply->get();
  constexpr size_t kFields = 10;
  for (size_t i = 0; i + kFields <= redis::ReplyLength(r); i += kFields) {
    auto number = [&](size_t n) { return redis::ReplyInteger(redis::ReplyElement(r, i + n)); };
    TypeDepth depth;
    depth.type = redis::ReplyString(redis::ReplyElement(r, i));
    depth.ready = number(1);
    depth.delayed = number(2);
    depth.in_flight = number(3);
    depth.dead = number(4);
    depth.succeeded = number(5);
    depth.cancelled = number(6);
    depth.replayed = number(7);
    depth.paused = number(8) != 0;
    depth.oldest_ready_at_ms = number(9);
    if (depth.ready + depth.delayed + depth.in_flight + depth.dead + depth.succeeded +
                depth.cancelled + depth.replayed >
            0 ||
        depth.paused) {
      out.push_back(std::move(depth));
    }
  }
  std::sort(out.begin(), out.end(),
            [](const TypeDepth& a, const TypeDepth& b) { return a.type < b.type; });
  return out;
}

Result<std::vector<TypeThroughput>> RedisQueue::Throughput(int64_t window_ms) {
  const int64_t now = clock_.NowMs();
  const ThroughputBuckets buckets = ThroughputBucketsAt(now, window_ms);
  std::lock_guard lock(admin_mu_);
  Result<redis::Reply> reply = RunAdminScript(
      redis::Script::kThroughput, {std::to_string(now), std::to_string(buckets.first_minute)});
  if (!reply.ok()) return reply.status();
  const redisReply* r = reply->get();
  const int64_t since = ToInt(redis::ReplyString(redis::ReplyElement(r, 0)));
  const int64_t covered_ms = ThroughputCoveredMs(now, buckets, since);
  std::map<std::string, TypeThroughput, std::less<>> by_type;
  for (size_t i = 1; i + 1 < redis::ReplyLength(r); i += 2) {
    std::string field = redis::ReplyString(redis::ReplyElement(r, i));
    const int64_t count = ToInt(redis::ReplyString(redis::ReplyElement(r, i + 1)));
    if (field.size() < 3 || field[1] != ':') continue;  // not one of ours
    TypeThroughput& t = by_type[field.substr(2)];
    switch (field[0]) {
      case 'a':
        t.arrived += count;
        break;
      case 'f':
        t.finished += count;
        break;
      case 'b':
        t.busy_ms += count;
        break;
      default:
        break;
    }
  }
  std::vector<TypeThroughput> out;
  out.reserve(by_type.size());
  for (auto& [type, t] : by_type) {
    t.type = type;
    t.window_ms = covered_ms;
    out.push_back(std::move(t));
  }
  return out;
}

QueueHealth RedisQueue::Health() {
  if (closed_.load()) return {false, "queue is closed", clock_.NowMs()};
  return health_.Get(pending_.Stalled());
}

Result<Job> RedisQueue::GetJob(const std::string& id) {
  std::lock_guard lock(admin_mu_);
  Result<redis::Reply> reply = RunAdminScript(redis::Script::kGetJob, {id});
  if (!reply.ok()) return reply.status();
  return JobFromReply(id, reply->get());
}

Result<DeadListPage> RedisQueue::ListDead(const std::string& type, int limit,
                                          const std::string& cursor) {
  if (limit <= 0) return InvalidArgument("limit must be positive");
  limit = std::min(limit, kMaxDeadPage);
  std::string cursor_score, cursor_id;
  if (!cursor.empty()) {
    size_t dot = cursor.find('.');
    cursor_score = cursor.substr(0, dot);
    cursor_id = dot == std::string::npos ? "" : cursor.substr(dot + 1);
    if (dot == std::string::npos || cursor_score.empty() || cursor_id.empty() ||
        !std::all_of(cursor_score.begin(), cursor_score.end(), ::isdigit)) {
      return InvalidArgument("bad cursor \"" + cursor + "\"");
    }
  }
  std::lock_guard lock(admin_mu_);
  Result<redis::Reply> reply = RunAdminScript(
      redis::Script::kListDead, {type, std::to_string(limit + 1), cursor_score, cursor_id});
  if (!reply.ok()) return reply.status();
  std::vector<std::pair<std::string, std::string>> entries;  // id, dead_at
  for (size_t i = 0; i + 2 <= redis::ReplyLength(reply->get()); i += 2) {
    entries.emplace_back(redis::ReplyString(redis::ReplyElement(reply->get(), i)),
                         redis::ReplyString(redis::ReplyElement(reply->get(), i + 1)));
  }
  DeadListPage page;
  const bool more = static_cast<int>(entries.size()) > limit;
  if (more) entries.resize(static_cast<size_t>(limit));
  for (const auto& [id, dead_at] : entries) {
    Result<redis::Reply> job_reply = RunAdminScript(redis::Script::kGetJob, {id});
    if (!job_reply.ok()) return job_reply.status();
    Result<Job> job = JobFromReply(id, job_reply->get());
    if (job.ok()) page.items.push_back(std::move(job).value());  // purged meanwhile: skip
  }
  if (more && !entries.empty()) {
    page.next_cursor = entries.back().second + "." + entries.back().first;
  }
  return page;
}

bool RedisQueue::PrunesPayloadFirst() const {
  return config_.retention_payload.count() > 0 && config_.retention_payload < config_.retention;
}

Result<std::string> RedisQueue::RerunScript(const std::string& id, bool dead_only) {
  const int64_t now = clock_.NowMs();
  const std::string new_id = NewJobId(now);
  std::lock_guard lock(admin_mu_);
  Result<redis::Reply> reply =
      RunAdminScript(redis::Script::kRerun, {std::to_string(now), id, new_id,
                                             dead_only ? "1" : "0", PrunesPayloadFirst() ? "1" : "0"});
  if (!reply.ok()) return reply.status();
  const redisReply* r = reply->get();
  const std::string kind = redis::ReplyString(redis::ReplyElement(r, 0));
  if (kind == "ok") return new_id;
  if (kind == "notfound") return NotFound(dead_only ? "no dead job " + id : "no job " + id);
  if (kind == "pruned") {
    return FailedPrecondition("job " + id + " no longer has its payload (retention_payload)");
  }
  const std::string state = redis::ReplyString(redis::ReplyElement(r, 1));
  if (state == "replayed") {
    return FailedPrecondition("job " + id + " was replayed already, as " +
                              redis::ReplyString(redis::ReplyElement(r, 2)));
  }
  return FailedPrecondition("job " + id + " is " + state + ": it runs already");
}

Result<std::string> RedisQueue::Rerun(const std::string& id) {
  return RerunScript(id, /*dead_only=*/false);
}

Status RedisQueue::Replay(const std::string& id) {
  Result<std::string> replayed = RerunScript(id, /*dead_only=*/true);
  return replayed.ok() ? Status::Ok() : replayed.status();
}

Result<int64_t> RedisQueue::ReplayAll(const std::string& type,
                                      const std::function<void(int64_t)>& progress) {
  int64_t total = 0;
  for (;;) {
    int64_t done = 0;
    {
      const int64_t now = clock_.NowMs();
      std::vector<std::string> args = {std::to_string(now), type,
                                       PrunesPayloadFirst() ? "1" : "0"};
      for (int i = 0; i < kAdminChunk; ++i) args.push_back(NewJobId(now));
      std::lock_guard lock(admin_mu_);
      Result<redis::Reply> reply = RunAdminScript(redis::Script::kReplayChunk, std::move(args));
      if (!reply.ok()) return reply.status();
      done = redis::ReplyInteger(reply->get());
    }
    if (done == 0) break;
    total += done;
    if (progress) progress(total);
  }
  return total;
}

Status RedisQueue::RunNow(const std::string& id) {
  std::lock_guard lock(admin_mu_);
  Result<redis::Reply> reply =
      RunAdminScript(redis::Script::kRunNow, {std::to_string(clock_.NowMs()), id});
  if (!reply.ok()) return reply.status();
  const std::string outcome = redis::ReplyString(reply->get());
  if (outcome == "ok") return Status::Ok();
  if (outcome == "notfound") return NotFound("no job " + id);
  return FailedPrecondition("job " + id + " is " + outcome + ", not waiting");
}

Status RedisQueue::Cancel(const std::string& id) {
  std::lock_guard lock(admin_mu_);
  Result<redis::Reply> reply = RunAdminScript(
      redis::Script::kCancel,
      {std::to_string(clock_.NowMs()), id, PrunesPayloadFirst() ? "1" : "0"});
  if (!reply.ok()) return reply.status();
  const std::string outcome = redis::ReplyString(reply->get());
  if (outcome == "ok") return Status::Ok();
  if (outcome == "notfound") return NotFound("no job " + id);
  return FailedPrecondition("job " + id + " is " + outcome +
                            "; only a waiting job can be cancelled");
}

Status RedisQueue::SetPaused(const std::string& type, bool paused) {
  if (type.empty()) return InvalidArgument("a job type is needed");
  std::lock_guard lock(admin_mu_);
  Result<redis::Reply> reply = RunAdminScript(redis::Script::kPause, {type, paused ? "1" : "0"});
  return reply.ok() ? Status::Ok() : reply.status();
}

Status RedisQueue::AppendAudit(const AuditEntry& entry) {
  const std::string json =
      nlohmann::json{{"at_ms", entry.at_ms > 0 ? entry.at_ms : clock_.NowMs()},
                     {"actor", entry.actor},
                     {"action", entry.action},
                     {"target", entry.target},
                     {"count", entry.count},
                     {"detail", entry.detail_json}}
          .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  std::lock_guard lock(admin_mu_);
  Result<redis::Reply> reply = RunAdminScript(redis::Script::kAuditAdd, {json});
  return reply.ok() ? Status::Ok() : reply.status();
}

Result<AuditPage> RedisQueue::ListAudit(int limit, const std::string& cursor) {
  if (limit <= 0) return InvalidArgument("limit must be positive");
  limit = std::min(limit, kMaxDeadPage);
  if (!cursor.empty() && !std::all_of(cursor.begin(), cursor.end(), ::isdigit)) {
    return InvalidArgument("bad cursor \"" + cursor + "\"");
  }
  std::lock_guard lock(admin_mu_);
  Result<redis::Reply> reply =
      RunAdminScript(redis::Script::kAuditList, {cursor, std::to_string(limit + 1)});
  if (!reply.ok()) return reply.status();
  AuditPage page;
  for (size_t i = 0; i < redis::ReplyLength(reply->get()); ++i) {
    if (static_cast<int>(page.items.size()) == limit) {
      page.next_cursor = std::to_string(page.items.back().seq);
      break;
    }
    const std::string member = redis::ReplyString(redis::ReplyElement(reply->get(), i));
    const size_t space = member.find(' ');
    AuditEntry entry;
    entry.seq = ToInt(member.substr(0, space));
    nlohmann::json json = nlohmann::json::parse(
        space == std::string::npos ? std::string() : member.substr(space + 1), nullptr, false);
    if (json.is_object()) {
      entry.at_ms = json.value("at_ms", int64_t{0});
      entry.actor = json.value("actor", std::string());
      entry.action = json.value("action", std::string());
      entry.target = json.value("target", std::string());
      entry.count = json.value("count", int64_t{0});
      entry.detail_json = json.value("detail", std::string("{}"));
    }
    page.items.push_back(std::move(entry));
  }
  return page;
}

Result<std::vector<HistoryBucket>> RedisQueue::History(int64_t from_ms, int64_t bucket_ms,
                                                       int buckets) {
  if (bucket_ms <= 0 || buckets <= 0 || buckets > kMaxHistoryBuckets) {
    return InvalidArgument("history: bucket_ms must be positive and buckets 1.." +
                           std::to_string(kMaxHistoryBuckets));
  }
  std::lock_guard lock(admin_mu_);
  Result<redis::Reply> reply =
      RunAdminScript(redis::Script::kHistory, {std::to_string(from_ms), std::to_string(bucket_ms),
                                               std::to_string(buckets)});
  if (!reply.ok()) return reply.status();
  const redisReply* r = reply->get();
  std::vector<HistoryBucket> out(static_cast<size_t>(buckets));
  for (int i = 0; i < buckets; ++i) {
    HistoryBucket& bucket = out[static_cast<size_t>(i)];
    bucket.start_ms = from_ms + i * bucket_ms;
    const size_t at = static_cast<size_t>(i) * 2;
    if (at + 1 >= redis::ReplyLength(r)) break;
    bucket.finished = redis::ReplyElement(r, at)->integer;
    bucket.dead = redis::ReplyElement(r, at + 1)->integer;
  }
  return out;
}

Result<JobPage> RedisQueue::ListJobs(const JobFilter& filter, int limit,
                                     const std::string& cursor) {
  if (limit <= 0) return InvalidArgument("limit must be positive");
  limit = std::min(limit, kMaxDeadPage);
  if (!cursor.empty() && !std::all_of(cursor.begin(), cursor.end(), ::isdigit)) {
    return InvalidArgument("bad cursor \"" + cursor + "\"");
  }
  JobState state;
  if (!filter.state.empty() && filter.state != "delayed" && !ParseJobState(filter.state, state)) {
    return InvalidArgument("unknown state \"" + filter.state + "\"");
  }
  // The driving index, as sqlite's: the key's jobs, the state's (delayed ones are in
  // the ready index), or every job.
  std::string drive = std::string(redis::kKeyPrefix) + "all";
  if (!filter.key.empty()) {
    drive = std::string(redis::kKeyPrefix) + "key:" + filter.key;
  } else if (!filter.state.empty()) {
    drive = std::string(redis::kKeyPrefix) + "st:" +
            (filter.state == "delayed" ? std::string("ready") : filter.state);
  }
  std::lock_guard lock(admin_mu_);
  Result<redis::Reply> reply = RunAdminScript(
      redis::Script::kListJobs,
      {drive, cursor, std::to_string(limit), std::to_string(kRedisListScanBudget),
       std::to_string(clock_.NowMs()), filter.state, filter.type, filter.source,
       std::to_string(filter.from_ms), std::to_string(filter.to_ms), filter.q});
  if (!reply.ok()) return reply.status();
  const redisReply* r = reply->get();
  JobPage page;
  page.next_cursor = redis::ReplyString(redis::ReplyElement(r, 0));
  page.total_estimate = redis::ReplyInteger(redis::ReplyElement(r, 1));
  const redisReply* ids = redis::ReplyElement(r, 2);
  const redisReply* jobs = redis::ReplyElement(r, 3);
  for (size_t i = 0; i < redis::ReplyLength(ids); ++i) {
    Result<Job> job = JobFromReply(redis::ReplyString(redis::ReplyElement(ids, i)),
                                   redis::ReplyElement(jobs, i));
    if (job.ok()) page.items.push_back(std::move(job).value());
  }
  return page;
}

Status RedisQueue::Purge(const std::string& id) {
  std::lock_guard lock(admin_mu_);
  Result<redis::Reply> reply = RunAdminScript(redis::Script::kPurge, {id});
  if (!reply.ok()) return reply.status();
  if (redis::ReplyInteger(reply->get()) == 0) return NotFound("no dead job " + id);
  return Status::Ok();
}

Result<int64_t> RedisQueue::PurgeAll(const std::string& type) {
  int64_t total = 0;
  for (;;) {
    std::lock_guard lock(admin_mu_);
    Result<redis::Reply> reply =
        RunAdminScript(redis::Script::kPurgeChunk, {type, std::to_string(kAdminChunk)});
    if (!reply.ok()) return reply.status();
    int64_t done = redis::ReplyInteger(reply->get());
    if (done == 0) break;
    total += done;
  }
  return total;
}

void RedisQueue::Close() {
  std::lock_guard close_lock(close_mu_);
  if (closed_.exchange(true)) return;
  pending_.Close();
  {
    std::lock_guard lock(subscriber_sleep_mu_);
  }
  subscriber_sleep_.notify_all();
  {
    std::lock_guard lock(subscriber_mu_);
    if (subscriber_connection_) subscriber_connection_->ShutdownSocket();
  }
  if (dispatcher_.joinable()) dispatcher_.join();
  if (subscriber_.joinable()) subscriber_.join();
  std::lock_guard lock(admin_mu_);
  admin_ = {};
}

Result<std::unique_ptr<Queue>> OpenRedisQueue(const QueueConfig& config, Clock& clock,
                                              const RedisQueueOptions& options) {
  Result<std::unique_ptr<RedisQueue>> queue = RedisQueue::Open(config, clock, options);
  if (!queue.ok()) return queue.status();
  return std::unique_ptr<Queue>(std::move(queue).value());
}

}  // namespace firebreak
