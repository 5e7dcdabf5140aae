// The distributed queue backend: Redis (DESIGN §4). Many `ingest` and `worker`
// processes on many hosts share one Redis; every job state change is one Lua script
// (redis_scripts.h), so it is atomic whoever runs it. Data model and the reasons for
// sorted sets over Streams: docs/redis-queue.md.
//
// Threads: one dispatcher thread owns the main connection. It takes every pending
// Enqueue/Claim/Finish (up to Options::max_batch), pipelines them in one round trip,
// and runs their callbacks with the replies; Redis' own AOF fsync (appendfsync always)
// happens before it answers, so a callback's "accepted" is as durable as Redis is
// configured to be. The same thread runs the lease sweep every sweep_interval.
// A subscriber thread (started by SetWakeup) listens on fb:wake so a worker claims as
// soon as any process makes a job runnable. The synchronous tool methods use a third
// connection behind a mutex.
//
// When Redis is unreachable, operations fail at once with kUnavailable (ingress answers
// 503; workers retry their claim at the next poll) and the connection is retried with
// exponential backoff; no command blocks longer than queue.timeout, and while the
// dispatcher is blocked, enqueues are refused at once (queue/pending_ops.h).
//
// Health (queue/store_health.h): a round trip that stored something proves Redis takes
// writes; a lost connection or an error reply saying Redis refuses writes (OOM, MISCONF
// after a failed AOF write or snapshot, READONLY replica, LOADING) makes it not ready;
// the dispatcher probes with a `SET fb:probe` while failing or idle.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include "common/clock.h"
#include "common/status.h"
#include "config/config.h"
#include "common/redis_client.h"
#include "queue/pending_ops.h"
#include "queue/queue.h"
#include "queue/redis/redis_scripts.h"
#include "queue/store_health.h"

namespace firebreak {

struct RedisQueueOptions {
  int max_batch = 512;
  std::chrono::milliseconds sweep_interval{250};
  int sweep_limit = 500;  // expired leases moved per type per sweep
  std::chrono::milliseconds connect_timeout{1000};  // at most queue.timeout
  std::chrono::milliseconds reconnect_min{100};
  std::chrono::milliseconds reconnect_max{2000};
};

class RedisQueue final : public Queue {
 public:
  // Connects, loads the scripts and reads Redis' persistence settings. kInvalidArgument
  // for a bad url; kUnavailable when Redis cannot be reached at start.
  static Result<std::unique_ptr<RedisQueue>> Open(const QueueConfig& config, Clock& clock,
                                                  const RedisQueueOptions& options = {});
  ~RedisQueue() override;

  void Enqueue(NewJob job, EnqueueCallback done) override;
  void Claim(std::vector<ClaimSlots> slots, ClaimCallback done) override;
  void Finish(JobFinish finish, StatusCallback done) override;
  void SetWakeup(std::function<void()> wakeup) override;

  Result<std::vector<TypeDepth>> Stats() override;
  Result<std::vector<TypeThroughput>> Throughput(int64_t window_ms) override;
  QueueHealth Health() override;
  Result<Job> GetJob(const std::string& id) override;
  Result<DeadListPage> ListDead(const std::string& type, int limit,
                                const std::string& cursor) override;
  Status Replay(const std::string& id) override;
  Result<int64_t> ReplayAll(const std::string& type,
                            const std::function<void(int64_t)>& progress) override;
  Status Purge(const std::string& id) override;
  Result<int64_t> PurgeAll(const std::string& type) override;
  // Scans at most 5000 index entries per call (the script blocks Redis meanwhile).
  Result<JobPage> ListJobs(const JobFilter& filter, int limit, const std::string& cursor) override;
  Result<std::string> Rerun(const std::string& id) override;
  Status RunNow(const std::string& id) override;
  Status Cancel(const std::string& id) override;
  Status SetPaused(const std::string& type, bool paused) override;
  Status AppendAudit(const AuditEntry& entry) override;
  Result<AuditPage> ListAudit(int limit, const std::string& cursor) override;
  Result<std::vector<HistoryBucket>> History(int64_t from_ms, int64_t bucket_ms,
                                             int buckets) override;
  std::string DurabilityShortfall() override;
  void Close() override;

 private:
  struct EnqueueOp {
    NewJob job;
    EnqueueCallback done;
  };
  struct ClaimOp {
    std::vector<ClaimSlots> slots;
    ClaimCallback done;
  };
  struct FinishOp {
    JobFinish finish;
    StatusCallback done;
  };
  using Op = std::variant<EnqueueOp, ClaimOp, FinishOp>;

  // One connection with the scripts loaded (their SHA1s) on it.
  struct Session {
    std::unique_ptr<redis::Connection> connection;
    std::vector<std::string> shas;  // by Script
  };

  RedisQueue(const QueueConfig& config, redis::Address address, Clock& clock,
             const RedisQueueOptions& options);

  Result<Session> Connect(std::chrono::milliseconds command_timeout);
  // Reads appendonly/appendfsync and records (and logs, when it changed) the shortfall.
  void CheckPersistence(redis::Connection& connection);
  void AppendScript(Session& session, redis::Script script, std::vector<std::string> args);
  // Runs one script on the admin session (connecting if needed).
  Result<redis::Reply> RunAdminScript(redis::Script script, std::vector<std::string> args);

  // Answers an operation that will not run (closed, past its deadline, Redis down).
  static void FailOp(Op& op, const Status& status);
  void DispatchLoop();
  // Connects the dispatcher session if it is down and its backoff allows.
  Status EnsureConnected();
  // `probe`: also send the health probe write.
  void RunBatch(std::vector<Op>& batch, bool sweep, bool probe);
  void SubscribeLoop();
  // Whether finished jobs lose their payload before they are pruned (retention_payload).
  bool PrunesPayloadFirst() const;
  Result<std::string> RerunScript(const std::string& id, bool dead_only);

  const QueueConfig config_;
  const redis::Address address_;
  Clock& clock_;
  const RedisQueueOptions options_;

  // Owned by the dispatcher thread.
  Session session_;
  Status last_connect_error_;
  std::chrono::steady_clock::time_point next_connect_attempt_{};
  std::chrono::milliseconds backoff_{0};
  std::chrono::steady_clock::time_point last_sweep_{};
  std::mt19937_64 rng_{std::random_device{}()};

  PendingOps<Op> pending_;
  StoreHealth health_;
  WakeupHook wakeup_;

  std::mutex admin_mu_;
  Session admin_;  // guarded by admin_mu_

  // The subscriber's backoff sleep; Close wakes it.
  std::mutex subscriber_sleep_mu_;
  std::condition_variable subscriber_sleep_;
  std::thread subscriber_;
  std::mutex subscriber_mu_;
  redis::Connection* subscriber_connection_ = nullptr;  // guarded by subscriber_mu_

  std::mutex durability_mu_;
  std::string durability_shortfall_;  // guarded by durability_mu_

  std::mutex close_mu_;
  std::thread dispatcher_;
  std::atomic<bool> closed_{false};
};

Result<std::unique_ptr<Queue>> OpenRedisQueue(const QueueConfig& config, Clock& clock,
                                              const RedisQueueOptions& options = {});

}  // namespace firebreak
