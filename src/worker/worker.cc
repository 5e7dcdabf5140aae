#include "worker/worker.h"

#include <algorithm>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <deque>
#include <map>
#include <random>
#include <thread>

#include "common/crypto.h"
#include "common/json_string.h"
#include "common/units.h"
#include "egress/egress.h"
#include "telemetry/log.h"
#include "telemetry/tracing.h"
#include "worker/action_handler.h"
#include "worker/actions.h"
#include "worker/answer.h"
#include "worker/batch.h"
#include "worker/envelope.h"
#include "worker/handler.h"
#include "worker/running_jobs.h"

namespace firebreak {

namespace asio = boost::asio;

namespace {

// A claimed job's lease outlives its hard timeout by this much, so a live worker
// always records the outcome before anyone else may reclaim the job.
constexpr std::chrono::milliseconds kLeaseGrace{5000};
// How often the worker looks for runnable jobs when nobody woke it (delayed jobs,
// retries coming due, jobs enqueued by another process).
constexpr std::chrono::milliseconds kPollInterval{100};
// How long handler processes get to exit after their stdin is closed at shutdown.
constexpr std::chrono::milliseconds kHandlerExitGrace{1000};
// A deferred action (its breaker open, say) that gave no Retry-After runs again after this.
constexpr std::chrono::milliseconds kDefaultDeferral{1000};

}  // namespace

class Worker::Impl {
 public:
  Impl(const Config& config, Queue& queue, Metrics& metrics, Clock& clock, WorkerContext context)
      : config_(config),
        queue_(queue),
        metrics_(metrics),
        clock_(clock),
        context_(std::move(context)),
        work_(asio::make_work_guard(io_)),
        poll_timer_(io_),
        rng_(std::random_device{}()) {}

  ~Impl() { Join(); }

  Status Start() {
    const std::string sidecar =
        context_.sidecar_url.empty() ? config_.worker.sidecar : context_.sidecar_url;
    for (const JobConfig& job : config_.jobs) {
      auto handler = MakeHandler(job, sidecar, io_);
      if (!handler.ok()) {
        return InvalidArgument("jobs \"" + job.type + "\": " + handler.status().message());
      }
      TypeState& state = types_[job.type];
      state.config = &job;
      state.handler = std::move(handler).value();
      state.metrics = &metrics_.RegisterJobType(job.type);
      if (job.batch.enabled()) {
        state.former = std::make_unique<BatchFormer>(job.batch);
        state.batch_timer = std::make_unique<asio::steady_timer>(io_);
        state.batch_size = &metrics_.RegisterBatchSize(job.type);
      }
    }
    // Every integration's actions are jobs of their own type, run through its egress.
    for (const IntegrationConfig& integration : config_.integrations) {
      if (context_.egress == nullptr) {
        return InvalidArgument("integrations \"" + integration.name +
                               "\": actions need the egress, which this process has not");
      }
      const JobConfig& job = action_jobs_.emplace_back(ActionJobConfig(integration));
      TypeState& state = types_[job.type];
      state.config = &job;
      state.handler = std::make_unique<ActionHandler>(integration, *context_.egress, io_);
      state.metrics = &metrics_.RegisterJobType(job.type);
    }
    thread_ = std::thread([this] { io_.run(); });
    asio::post(io_, [this] { Poll(); });
    return Status::Ok();
  }

  void Wake() {
    if (wake_posted_.exchange(true)) return;
    asio::post(io_, [this] {
      wake_posted_ = false;
      TryClaim();
    });
  }

  void Stop(std::chrono::milliseconds grace) {
    if (!thread_.joinable()) return;
    asio::post(io_, [this] {
      stopping_ = true;
      poll_timer_.cancel();
      log::Info("worker stopping", {{"in_flight", in_flight_total_}});
      ReleaseHeld();
    });
    auto deadline = std::chrono::steady_clock::now() + grace;
    while (busy_.load() > 0 && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    // Whatever still runs goes back to the queue now; its handler is killed when the
    // handlers are destroyed below, and its late answer is ignored as stale.
    asio::post(io_, [this] { ReleaseRunning(); });
    auto release_deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (pending_releases_.load() > 0 && std::chrono::steady_clock::now() < release_deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    asio::post(io_, [this] {
      for (auto& [type, state] : types_) state.handler->Shutdown();
    });
    // Give handler processes a moment to exit on their own (stdin closed) before the
    // handlers' destructors kill whatever is left.
    auto drain_deadline = std::chrono::steady_clock::now() + kHandlerExitGrace;
    std::atomic<bool> drained{false};
    while (!drained.load() && std::chrono::steady_clock::now() < drain_deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      asio::post(io_, [this, &drained] {
        bool all = true;
        for (auto& [type, state] : types_) all = all && state.handler->Drained();
        drained = all;
      });
    }
    Join();
  }

 private:
  struct TypeState {
    const JobConfig* config = nullptr;
    std::unique_ptr<Handler> handler;
    JobTypeMetrics* metrics = nullptr;
    // Attempts running; for a batched type, runs: started ones plus the ones its held
    // jobs form (so concurrency and max_in_flight count batch runs).
    int in_flight = 0;
    // Batched types only (config->batch.enabled()):
    std::unique_ptr<BatchFormer> former;              // claimed jobs waiting for a run
    std::unique_ptr<asio::steady_timer> batch_timer;  // the oldest held job's wait
    int running_batches = 0;
    Histogram* batch_size = nullptr;
  };
  static int64_t TimeoutMs(const TypeState& type) { return type.config->timeout.count(); }

  struct Attempt {
    Job job;
    TypeState* type = nullptr;
    std::chrono::steady_clock::time_point started;
    int64_t started_at_ms = 0;
    int64_t started_unix_ns = 0;  // 0 when tracing is off
    // The context the job was stored with (the ingress span, or the job that created
    // it); job.traceparent is this attempt's own span, which the handler continues.
    std::string parent_traceparent;
    std::string batch_id;   // the batch run's id (its first job's) when batched
    bool released = false;  // put back by shutdown; the handler's answer is ignored
  };

  static void RecordAttemptSpan(const Attempt& attempt, std::string_view outcome,
                                const std::string& error) {
    if (attempt.started_unix_ns == 0) return;
    const Job& job = attempt.job;
    trace::Span span = trace::Span::For("job " + job.type, trace::SpanKind::kConsumer,
                                        job.traceparent, attempt.parent_traceparent,
                                        attempt.started_unix_ns);
    span.end_unix_ns = trace::NowUnixNs();
    span.Set("messaging.system", "firebreak");
    span.Set("firebreak.job_id", job.id);
    span.Set("firebreak.job_type", job.type);
    span.Set("firebreak.source", job.source);
    span.Set("firebreak.attempt", static_cast<int64_t>(job.attempt));
    span.Set("firebreak.max_attempts", static_cast<int64_t>(job.max_attempts));
    span.Set("firebreak.outcome", outcome);
    if (!attempt.batch_id.empty()) span.Set("firebreak.batch_id", attempt.batch_id);
    if (!error.empty()) {
      span.error = outcome != "deferred";
      span.status_message = error;
    }
    trace::Record(span);
  }

  void Join() {
    if (!thread_.joinable()) return;
    work_.reset();
    asio::post(io_, [this] { io_.stop(); });
    thread_.join();
    types_.clear();  // destroys handlers: kills and reaps their processes
  }

  void Poll() {
    if (stopping_) return;
    TryClaim();
    poll_timer_.expires_after(kPollInterval);
    poll_timer_.async_wait([this](boost::system::error_code ec) {
      if (!ec) Poll();
    });
  }

  void TryClaim() {
    if (stopping_) return;
    if (claiming_) {
      // A wakeup during a claim may be for a job that claim did not see: claim again after.
      claim_again_ = true;
      return;
    }
    claim_again_ = false;
    int free_total = config_.worker.max_in_flight - in_flight_total_;
    if (free_total <= 0) return;
    std::vector<ClaimSlots> slots;
    // Rotate the starting type so a busy type cannot starve the others of max_in_flight.
    size_t n = types_.size();
    auto it = types_.begin();
    std::advance(it, static_cast<long>(rotation_++ % std::max<size_t>(n, 1)));
    for (size_t i = 0; i < n && free_total > 0; ++i, ++it) {
      if (it == types_.end()) it = types_.begin();
      TypeState& state = it->second;
      std::chrono::milliseconds lease = state.config->timeout + kLeaseGrace;
      int take = 0;
      if (state.former) {
        // Held jobs are leased from their claim: the batch's wait comes first.
        lease += state.config->batch.wait;
        BatchClaim claim = PlanBatchClaim(state.config->batch, state.config->concurrency,
                                          state.running_batches, state.former->held(), free_total);
        take = claim.jobs;
        free_total -= claim.new_runs;
      } else {
        take = std::min(state.config->concurrency - state.in_flight, free_total);
        free_total -= std::max(take, 0);
      }
      if (take <= 0) continue;
      slots.push_back({it->first, take, lease.count(), state.config->priority_step.count(),
                       state.config->throttle_per_key, state.config->throttle_period.count(),
                       state.config->global_concurrency});
    }
    if (slots.empty()) return;
    claiming_ = true;
    queue_.Claim(std::move(slots), [this](Result<std::vector<Job>> claimed) {
      asio::post(io_,
                 [this, claimed = std::move(claimed)]() mutable { OnClaimed(std::move(claimed)); });
    });
  }

  void OnClaimed(Result<std::vector<Job>> claimed) {
    claiming_ = false;
    if (!claimed.ok()) {
      // While the store is down every poll fails: log the first failure and the recovery.
      if (claim_failures_++ == 0) {
        log::Error("claim failed; retrying at every poll until the queue answers",
                   {{"error", claimed.status().ToString()}});
      }
      return;
    }
    if (claim_failures_ > 0) {
      log::Info("claims work again", {{"failed_polls", claim_failures_}});
      claim_failures_ = 0;
    }
    std::vector<TypeState*> batched;
    const auto now = std::chrono::steady_clock::now();
    for (Job& job : *claimed) {
      auto found = types_.find(job.type);
      if (found != types_.end() && found->second.former) {
        TypeState* type = &found->second;
        if (std::find(batched.begin(), batched.end(), type) == batched.end()) {
          batched.push_back(type);
        }
        type->former->Add(std::move(job), now);
        continue;
      }
      StartAttempt(std::move(job));
    }
    for (TypeState* state : batched) DispatchDueBatches(*state);
    // A claim that was in flight when shutdown began: what it brought back for a batch
    // goes straight back too.
    if (stopping_ && !batched.empty()) ReleaseHeld();
    if (!claimed->empty() || claim_again_) TryClaim();
  }

  // Starts every run a batched type's held jobs make up now, then sets its timer for
  // the next one that a wait will end.
  void DispatchDueBatches(TypeState& type) {
    if (stopping_) return;
    const auto now = std::chrono::steady_clock::now();
    while (type.running_batches < type.config->concurrency) {
      std::vector<Job> jobs = type.former->TakeDue(now);
      if (jobs.empty()) break;
      StartBatch(type, std::move(jobs));
    }
    SyncBatchRuns(type);
    std::optional<BatchFormer::TimePoint> deadline = type.former->Deadline();
    // With every run busy the next one to end dispatches (PlanBatchClaim keeps that rare).
    if (!deadline || type.running_batches >= type.config->concurrency) {
      type.batch_timer->cancel();
      return;
    }
    type.batch_timer->expires_at(*deadline);
    type.batch_timer->async_wait([this, &type](boost::system::error_code ec) {
      if (!ec) DispatchDueBatches(type);
    });
  }

  // A batched type's in_flight is its runs: started plus forming.
  void SyncBatchRuns(TypeState& type) {
    int runs = type.running_batches + FormingRuns(type.config->batch, type.former->held());
    in_flight_total_ += runs - type.in_flight;
    type.in_flight = runs;
  }

  void StartBatch(TypeState& type, std::vector<Job> jobs) {
    std::vector<std::shared_ptr<Attempt>> attempts;
    std::vector<std::string> envelopes;
    attempts.reserve(jobs.size());
    envelopes.reserve(jobs.size());
    const std::string batch_id = jobs.front().id;
    for (Job& job : jobs) {
      std::shared_ptr<Attempt> attempt = BeginAttempt(type, std::move(job));
      attempt->batch_id = batch_id;
      envelopes.push_back(BuildEnvelope(attempt->job, attempt->started_at_ms + TimeoutMs(type)));
      attempts.push_back(std::move(attempt));
    }
    ++type.running_batches;
    type.batch_size->Observe(static_cast<double>(attempts.size()));
    log::Debug("batch started", {{"batch_id", batch_id},
                                 {"job_type", type.config->type},
                                 {"jobs", static_cast<int64_t>(attempts.size())}});
    const std::string traceparent = attempts.front()->job.traceparent;
    type.handler->Run(
        {batch_id, traceparent, BuildBatchEnvelope(batch_id, type.config->type, envelopes)},
        type.config->timeout, [this, &type, attempts = std::move(attempts)](HandlerResult result) {
          OnBatchDone(type, attempts, std::move(result));
        });
  }

  void OnBatchDone(TypeState& type, const std::vector<std::shared_ptr<Attempt>>& attempts,
                   HandlerResult result) {
    --type.running_batches;
    SyncBatchRuns(type);
    std::vector<std::string> job_ids;
    job_ids.reserve(attempts.size());
    for (const auto& attempt : attempts) job_ids.push_back(attempt->job.id);
    Result<std::vector<HandlerResult>> outcomes = SplitBatchAnswer(result, job_ids);
    if (!outcomes.ok()) {
      // A malformed answer fails every job of the run (each retries or dead-letters
      // on its own attempts): none is taken as done on a guess.
      log::Warn("invalid batch answer; every job of the batch failed",
                {{"batch_id", attempts.front()->batch_id},
                 {"job_type", type.config->type},
                 {"jobs", static_cast<int64_t>(attempts.size())},
                 {"error", outcomes.status().message()}});
      HandlerResult failed;
      failed.kind = HandlerResult::Kind::kFailed;
      failed.error = TruncateUtf8("invalid batch answer: " + outcomes.status().message(),
                                  kMaxAnswerErrorBytes);
      outcomes = std::vector<HandlerResult>(attempts.size(), failed);
    }
    for (size_t i = 0; i < attempts.size(); ++i) {
      FinishAttempt(attempts[i], std::move((*outcomes)[i]));
    }
    DispatchDueBatches(type);
    TryClaim();
  }

  void StartAttempt(Job job) {
    auto found = types_.find(job.type);
    if (found == types_.end()) {
      log::Error("claimed a job of an unknown type", {{"job_id", job.id},
                                                      {"job_type", job.type},
                                                      {"trace_id", TraceIdOf(job.traceparent)}});
      return;
    }
    ++found->second.in_flight;
    ++in_flight_total_;
    std::shared_ptr<Attempt> attempt = BeginAttempt(found->second, std::move(job));
    const Job& j = attempt->job;
    attempt->type->handler->Run(
        {j.id, j.traceparent, BuildEnvelope(j, attempt->started_at_ms + TimeoutMs(*attempt->type))},
        attempt->type->config->timeout,
        [this, attempt](HandlerResult result) { OnAttemptDone(attempt, std::move(result)); });
  }

  // The attempt's bookkeeping before its handler runs: wait metric, its own span
  // context, running_ (which shutdown releases from) and busy_.
  std::shared_ptr<Attempt> BeginAttempt(TypeState& type, Job job) {
    auto attempt = std::make_shared<Attempt>();
    attempt->type = &type;
    attempt->started = std::chrono::steady_clock::now();
    attempt->started_at_ms = clock_.NowMs();
    int64_t due_ms = std::max(job.run_at_ms, job.enqueued_at_ms);
    attempt->type->metrics->wait->Observe(
        static_cast<double>(std::max<int64_t>(0, attempt->started_at_ms - due_ms)) / 1000.0);
    if (trace::Enabled()) attempt->started_unix_ns = trace::NowUnixNs();
    attempt->parent_traceparent = std::move(job.traceparent);
    job.traceparent = ChildTraceparent(attempt->parent_traceparent);
    attempt->job = std::move(job);
    ++busy_;
    running_.emplace(attempt->job.id, attempt);
    const Job& j = attempt->job;
    if (context_.running != nullptr) context_.running->Add(j.id, j.traceparent);
    log::Debug("job started", {{"job_id", j.id},
                               {"job_type", j.type},
                               {"source", j.source},
                               {"dedupe_key", j.dedupe_key},
                               {"attempt", j.attempt},
                               {"trace_id", TraceIdOf(j.traceparent)}});
    return attempt;
  }

  void OnAttemptDone(const std::shared_ptr<Attempt>& attempt, HandlerResult result) {
    --attempt->type->in_flight;
    --in_flight_total_;
    FinishAttempt(attempt, std::move(result));
    TryClaim();
  }

  // Records one attempt's outcome (of its own run, or its share of a batch run's).
  void FinishAttempt(const std::shared_ptr<Attempt>& attempt, HandlerResult result) {
    TypeState& type = *attempt->type;
    running_.erase(attempt->job.id);
    if (context_.running != nullptr) context_.running->Remove(attempt->job.id);
    if (attempt->released) return;  // already back in the queue; busy_ was settled then
    const Job& job = attempt->job;
    auto elapsed = std::chrono::steady_clock::now() - attempt->started;
    int64_t duration_ms = std::chrono::duration_cast<std::chrono::milliseconds>(elapsed).count();
    type.metrics->duration->Observe(std::chrono::duration<double>(elapsed).count());

    JobFinish finish;
    finish.job_id = job.id;
    finish.attempt = job.attempt;
    finish.record.attempt = job.attempt;
    finish.record.started_at_ms = attempt->started_at_ms;
    finish.record.duration_ms = duration_ms;
    finish.record.error = result.error;
    std::string trace_id = TraceIdOf(job.traceparent);
    std::string_view span_outcome;

    if (result.kind == HandlerResult::Kind::kOk && !result.actions_json.empty() &&
        result.actions_json != "[]") {
      // The outbox: the actions are stored with the job's success, in the same commit.
      Result<std::vector<NewJob>> actions =
          BuildActionJobs(result.actions_json, job, config_, clock_.NowMs());
      if (actions.ok()) {
        finish.follow_ups = std::move(actions).value();
      } else {
        // Running the handler again would return the same actions: dead-letter the job
        // with the reason, so a fixed bot can replay it.
        result.kind = HandlerResult::Kind::kRejected;
        result.error = "invalid actions: " + actions.status().message();
        finish.record.error = result.error;
      }
    }
    if (result.kind == HandlerResult::Kind::kOk && !result.enqueue_json.empty() &&
        result.enqueue_json != "[]") {
      // Jobs the handler enqueues (optionally delayed) join the same commit.
      Result<std::vector<NewJob>> enqueued =
          BuildEnqueuedJobs(result.enqueue_json, job, config_, clock_.NowMs());
      if (enqueued.ok()) {
        for (NewJob& next : *enqueued) finish.follow_ups.push_back(std::move(next));
      } else {
        result.kind = HandlerResult::Kind::kRejected;
        result.error = "invalid enqueue: " + enqueued.status().message();
        finish.record.error = result.error;
        finish.follow_ups.clear();
      }
    }
    if (result.kind == HandlerResult::Kind::kOk) {
      type.metrics->succeeded->Increment();
      finish.disposition = Disposition::kSucceeded;
      span_outcome = "succeeded";
      log::Info("job succeeded", {{"job_id", job.id},
                                  {"job_type", job.type},
                                  {"source", job.source},
                                  {"dedupe_key", job.dedupe_key},
                                  {"attempt", job.attempt},
                                  {"duration_ms", duration_ms},
                                  {"actions", static_cast<int64_t>(finish.follow_ups.size())},
                                  {"trace_id", trace_id}});
    } else if (result.kind == HandlerResult::Kind::kDeferred) {
      // Nothing was attempted (an action whose breaker is open, rate limit exhausted): the
      // job waits without spending an attempt, so an outage cannot push it to the DLQ.
      type.metrics->retried->Increment();
      std::chrono::milliseconds delay = result.retry_after.value_or(kDefaultDeferral);
      finish.disposition = Disposition::kRelease;
      finish.run_at_ms = clock_.NowMs() + std::max<int64_t>(delay.count(), 10);
      finish.record.outcome = "deferred";
      finish.keep_record = false;
      span_outcome = "deferred";
      log::Info("job deferred", {{"job_id", job.id},
                                 {"job_type", job.type},
                                 {"attempt", job.attempt},
                                 {"error", result.error},
                                 {"retry_in_ms", static_cast<int64_t>(delay.count())},
                                 {"trace_id", trace_id}});
    } else {
      bool timed_out = result.kind == HandlerResult::Kind::kTimedOut;
      bool retryable = result.kind != HandlerResult::Kind::kRejected;
      (timed_out ? type.metrics->timed_out : type.metrics->failed)->Increment();
      finish.record.outcome = timed_out ? "timed_out" : retryable ? "failed" : "rejected";
      RetryDecision decision = DecideRetry(type.config->backoff, job.attempt, job.max_attempts,
                                           retryable, result.retry_after, rng_);
      if (decision.retry) {
        type.metrics->retried->Increment();
        finish.disposition = Disposition::kRetry;
        span_outcome = "retried";
        finish.run_at_ms = clock_.NowMs() + decision.delay.count();
        log::Warn("job failed; retrying", {{"job_id", job.id},
                                           {"job_type", job.type},
                                           {"source", job.source},
                                           {"dedupe_key", job.dedupe_key},
                                           {"attempt", job.attempt},
                                           {"max_attempts", job.max_attempts},
                                           {"outcome", finish.record.outcome},
                                           {"error", result.error},
                                           {"retry_in_ms", decision.delay.count()},
                                           {"reason", decision.reason},
                                           {"duration_ms", duration_ms},
                                           {"trace_id", trace_id}});
      } else {
        type.metrics->dead_lettered->Increment();
        finish.disposition = Disposition::kDead;
        span_outcome = "dead_lettered";
        log::Error("job dead-lettered", {{"job_id", job.id},
                                         {"job_type", job.type},
                                         {"source", job.source},
                                         {"dedupe_key", job.dedupe_key},
                                         {"attempt", job.attempt},
                                         {"max_attempts", job.max_attempts},
                                         {"outcome", finish.record.outcome},
                                         {"error", result.error},
                                         {"reason", decision.reason},
                                         {"trace_id", trace_id}});
      }
    }
    RecordAttemptSpan(*attempt, span_outcome, result.error);
    RecordFinish(std::move(finish), /*release=*/false, std::move(trace_id));
  }

  // Shutdown: jobs held for a batch go back to the queue at once (not after their
  // lease), without spending the attempt they were claimed with and without a record.
  void ReleaseHeld() {
    for (auto& [name, type] : types_) {
      if (!type.former) continue;
      type.batch_timer->cancel();
      std::vector<Job> held = type.former->TakeAll();
      SyncBatchRuns(type);
      for (const Job& job : held) {
        JobFinish finish;
        finish.job_id = job.id;
        finish.attempt = job.attempt;
        finish.disposition = Disposition::kRelease;
        finish.run_at_ms = clock_.NowMs();
        finish.keep_record = false;
        RecordFinish(std::move(finish), /*release=*/true, TraceIdOf(job.traceparent));
      }
      if (!held.empty()) {
        log::Info("jobs held for a batch back to the queue",
                  {{"job_type", name}, {"jobs", static_cast<int64_t>(held.size())}});
      }
    }
  }

  // Puts every attempt still running back in the queue (shutdown grace is over).
  void ReleaseRunning() {
    for (auto& [id, attempt] : running_) {
      if (attempt->released) continue;
      attempt->released = true;
      --busy_;
      JobFinish finish;
      finish.job_id = attempt->job.id;
      finish.attempt = attempt->job.attempt;
      finish.disposition = Disposition::kRelease;  // a deploy must not use up attempts
      finish.run_at_ms = clock_.NowMs();
      finish.record.attempt = attempt->job.attempt;
      finish.record.started_at_ms = attempt->started_at_ms;
      finish.record.duration_ms = clock_.NowMs() - attempt->started_at_ms;
      finish.record.outcome = "interrupted";
      finish.record.error = "worker shut down before the attempt finished";
      log::Warn("job interrupted by shutdown; back to the queue",
                {{"job_id", attempt->job.id},
                 {"job_type", attempt->job.type},
                 {"attempt", attempt->job.attempt},
                 {"trace_id", TraceIdOf(attempt->job.traceparent)}});
      RecordAttemptSpan(*attempt, "interrupted", finish.record.error);
      RecordFinish(std::move(finish), /*release=*/true, TraceIdOf(attempt->job.traceparent));
    }
  }

  void RecordFinish(JobFinish finish, bool release, std::string trace_id) {
    // A finished attempt stays counted in busy_ until its outcome is committed.
    if (release) ++pending_releases_;
    std::string job_id = finish.job_id;
    queue_.Finish(std::move(finish), [this, job_id, release, trace_id](Status status) {
      if (!status.ok()) {
        log::Warn("job outcome not recorded",
                  {{"job_id", job_id}, {"error", status.ToString()}, {"trace_id", trace_id}});
      }
      --(release ? pending_releases_ : busy_);
      if (!release) Wake();
    });
  }

  const Config& config_;
  Queue& queue_;
  Metrics& metrics_;
  Clock& clock_;
  const WorkerContext context_;
  std::deque<JobConfig> action_jobs_;  // one per integration; stable addresses

  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  std::thread thread_;
  std::atomic<bool> wake_posted_{false};
  // Attempts running plus outcomes not yet committed; read by Stop on its own thread.
  std::atomic<int> busy_{0};
  std::atomic<int> pending_releases_{0};

  // Owned by the io_ thread.
  asio::steady_timer poll_timer_;
  std::map<std::string, TypeState> types_;
  std::map<std::string, std::shared_ptr<Attempt>> running_;
  std::mt19937_64 rng_;
  int in_flight_total_ = 0;
  int64_t claim_failures_ = 0;  // consecutive failed claims
  bool claim_again_ = false;    // woken while a claim was in flight
  size_t rotation_ = 0;
  bool claiming_ = false;
  bool stopping_ = false;
};

Worker::Worker(const Config& config, Queue& queue, Metrics& metrics, Clock& clock,
               WorkerContext context)
    : impl_(std::make_unique<Impl>(config, queue, metrics, clock, std::move(context))) {}
Worker::~Worker() = default;
Status Worker::Start() { return impl_->Start(); }
void Worker::Wake() { impl_->Wake(); }
void Worker::Stop(std::chrono::milliseconds grace) { impl_->Stop(grace); }

}  // namespace firebreak
