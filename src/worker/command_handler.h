// The NDJSON process pool behind `handler = { command = [...] }` (DESIGN §5).
//
// Up to job.concurrency long-lived processes, started on demand. Each runs one job at
// a time: the envelope goes to its stdin as one line, the answer comes back as one
// line on its stdout. stderr lines are logged with the job id. A process that times
// out, breaks the protocol or dies is killed (SIGKILL), reaped, and replaced by a
// fresh one for the next job. Runs beyond the pool size wait in FIFO order.
#pragma once

#include <sys/types.h>

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "config/config.h"
#include "worker/handler.h"

namespace firebreak {

// The parsed answer line of a command handler (exposed for tests). A well-formed
// answer with a mismatched id, a non-boolean "ok", a non-array "actions" or no JSON
// object at all is an error (a protocol violation: the caller kills the process).
Result<HandlerResult> ParseCommandAnswer(std::string_view line, std::string_view job_id);

// Single-threaded: every call must come from the thread running `io`; completion
// callbacks are posted to `io`, exactly once per Run, never inline.
class CommandHandler final : public Handler {
 public:
  // Checks `job.handler.command` (non-empty). No process starts until the first Run.
  // Ignores SIGPIPE process-wide so that a dead child's pipe is an error, not a signal.
  static Result<std::unique_ptr<CommandHandler>> Create(const JobConfig& job,
                                                        const std::string& sidecar,
                                                        boost::asio::io_context& io);

  // SIGKILLs and reaps every process; attempts still running or queued are answered
  // kFailed "handler stopped" (posted to `io`).
  ~CommandHandler() override;

  CommandHandler(const CommandHandler&) = delete;
  CommandHandler& operator=(const CommandHandler&) = delete;

  void Run(HandlerJob job, std::chrono::milliseconds timeout, HandlerCallback done) override;

  // Closes the stdin of idle processes (and of busy ones once their job and the queue
  // are done); a process that has not exited 1 s later is SIGKILLed and reaped.
  // Runs after Shutdown are answered kFailed "handler is shut down". Runs queued
  // before Shutdown still run. The grace period runs on `io`; destroying the handler
  // instead kills whatever is left at once.
  void Shutdown() override;
  bool Drained() const override;

  // Pids of the processes that exist right now (started, not yet reaped).
  std::vector<pid_t> ProcessIds() const;

 private:
  struct Process;
  struct PendingRun {
    std::string job_id;
    std::string envelope_json;
    std::chrono::milliseconds timeout;
    HandlerCallback done;
    std::string trace_id;  // for log lines about the job
  };

  CommandHandler(const JobConfig& job, const std::string& sidecar, boost::asio::io_context& io);

  void Dispatch();
  Result<std::shared_ptr<Process>> Spawn();
  void StartJob(const std::shared_ptr<Process>& proc, PendingRun run);
  static void ReadStderr(const std::shared_ptr<Process>& proc);
  void ReadStdout(const std::shared_ptr<Process>& proc);
  void ConsumeStdout(const std::shared_ptr<Process>& proc);
  void OnAnswerLine(const std::shared_ptr<Process>& proc, std::string_view line);
  void OnStdoutClosed(const std::shared_ptr<Process>& proc);
  void PollForExit(const std::shared_ptr<Process>& proc, int polls_left);
  // SIGKILLs and reaps `proc`; its job (if any) is answered `kind` with `error`
  // (followed by how the process ended when `add_exit_status`).
  void Kill(const std::shared_ptr<Process>& proc, HandlerResult::Kind kind, std::string error,
            bool add_exit_status = false);
  void OnReaped(const std::shared_ptr<Process>& proc, std::optional<int> wait_status,
                bool killed_by_us, HandlerResult::Kind kind, const std::string& error);
  void BecomeIdle(const std::shared_ptr<Process>& proc);
  void Retire(const std::shared_ptr<Process>& proc);
  void Answer(HandlerCallback done, HandlerResult result);

  boost::asio::io_context& io_;
  const std::string job_type_;
  const std::vector<std::string> command_;
  const std::vector<std::string> environment_;  // inherited + FIREBREAK_SIDECAR
  const size_t max_processes_;
  bool shutting_down_ = false;
  std::vector<std::shared_ptr<Process>> processes_;  // alive (not yet reaped)
  std::deque<PendingRun> waiting_;                   // Runs no process was free for
};

}  // namespace firebreak
