// The NDJSON process pool behind `handler = { command = [...] }` (DESIGN §5).
//
// Up to job.concurrency long-lived processes, started on demand. Each runs one job at
// a time: the envelope goes to its stdin as one line, the answer comes back as one
// line on its stdout. Runs beyond the pool size wait in FIFO order.
//
// Every handler process leads its own process group (pgid == pid), and every kill is
// SIGKILL to the whole group, sent while the leader is not yet reaped (so the pgid
// cannot have been reused): whatever the handler forked dies with it, unless it moved
// itself to another group or session (setsid, double-fork daemons). Processes also get
// PR_SET_PDEATHSIG(SIGKILL), so they die with firebreak even on kill -9 (their own
// children then do not, the group kill being ours to send). Processes are killed:
// - on the job's timeout: the attempt is answered kTimedOut "timed out after <t>";
// - on a protocol error (bad or too long answer line, output while idle): kFailed
//   "protocol error: ...";
// - at shutdown, 1 s after their stdin was closed if they have not exited; and by the
//   destructor, at once;
// - when they exit on their own: the rest of their group is killed before the leader
//   is reaped. A job running then is answered kFailed "handler exited with code N" or
//   "handler killed by signal N (SIGxxx)" at once, whoever still holds the pipes (an
//   answer written before the exit still counts: stdout is first read to its end,
//   which the group kill brings at once, or for at most 200 ms).
// The exit is seen independently of the pipes (a pidfd, or where the kernel has none
// a waitid poll every 50 ms). A process that closes its stdout (or whose stdin breaks)
// gets 200 ms to exit, which then reports as above; otherwise its group is killed and
// the job answered kFailed "handler closed its stdout" / "write to handler: ...".
// A dead process is replaced by a fresh one when the next job needs it.
//
// stderr goes to the log as "handler stderr" lines ("line", and the job id of the
// running or, for output trailing an answer, the last job), with bounded volume:
// - a line is logged up to 16 KiB (cut at a UTF-8 boundary) with "truncated": true;
//   the rest of it is dropped, and when its newline (or EOF) comes one "handler stderr
//   line truncated" line gives "bytes_dropped";
// - each attempt may log 200 lines and 64 KiB (output between attempts counts against
//   the last one's); a line that does not fit ends the budget, and later output is
//   dropped until the next attempt starts. What was dropped is reported by one "handler
//   stderr dropped" warning ("lines_dropped", "bytes_dropped") when the attempt ends,
//   and again for output dropped after that, when the next attempt starts or stderr
//   closes;
// - lines go through log::WriteLimited keyed on job type and text, so a line printed
//   over and over is written once, then once more with "repeated": N when its window
//   ends (a repeat still counts against the budget).
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
#include "worker/answer.h"
#include "worker/handler.h"

namespace firebreak {

// How a handler process's exit is noticed.
enum class ExitWatch {
  kPidfd,  // pidfd_open(2) watched on the io_context; falls back to kPoll when the
           // kernel has none (ENOSYS, Linux < 5.3) or refuses it, with one warning
  kPoll,   // waitid(WNOWAIT) every 50 ms (tests force it to cover the fallback)
};

// Single-threaded: every call must come from the thread running `io`; completion
// callbacks are posted to `io`, exactly once per Run, never inline. Kills and reaps
// happen on that thread and may block it for as long as the kernel takes to end a
// SIGKILLed process (normally microseconds).
class CommandHandler final : public Handler {
 public:
  // Checks `job.handler.command` (non-empty). No process starts until the first Run.
  // Ignores SIGPIPE process-wide so that a dead child's pipe is an error, not a signal.
  // Whoever runs firebreak must not set SIGCHLD to SIG_IGN nor reap children with
  // wait(-1): the pool reaps its own (if it cannot, exit statuses read "unknown").
  static Result<std::unique_ptr<CommandHandler>> Create(const JobConfig& job,
                                                        const std::string& sidecar,
                                                        boost::asio::io_context& io,
                                                        ExitWatch exit_watch = ExitWatch::kPidfd);

  // SIGKILLs every process group and reaps its leader; attempts still running or
  // queued are answered kFailed "handler stopped" (posted to `io`).
  ~CommandHandler() override;

  CommandHandler(const CommandHandler&) = delete;
  CommandHandler& operator=(const CommandHandler&) = delete;

  void Run(HandlerJob job, std::chrono::milliseconds timeout, HandlerCallback done) override;

  // Closes the stdin of idle processes (and of busy ones once their job and the queue
  // are done); a process that has not exited 1 s later is killed with its group.
  // Runs after Shutdown are answered kFailed "handler is shut down". Runs queued
  // before Shutdown still run. The grace period runs on `io`; destroying the handler
  // instead kills whatever is left at once.
  void Shutdown() override;
  bool Drained() const override;

  // Pids of the processes that exist right now (started, not yet reaped); each is
  // also the id of the process group it leads.
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

  CommandHandler(const JobConfig& job, const std::string& sidecar, boost::asio::io_context& io,
                 ExitWatch exit_watch);

  void Dispatch();
  Result<std::shared_ptr<Process>> Spawn();
  void StartJob(const std::shared_ptr<Process>& proc, PendingRun run);
  static void ReadStderr(const std::shared_ptr<Process>& proc);
  void ReadStdout(const std::shared_ptr<Process>& proc);
  void ConsumeStdout(const std::shared_ptr<Process>& proc);
  void OnAnswerLine(const std::shared_ptr<Process>& proc, std::string_view line);
  // The process takes no more jobs and should end: a pipe to it broke (stdout EOF, a
  // failed write) or it has ended. Its stdin is closed, and after kExitingGrace it is
  // reaped if it has ended, else killed with `error`.
  void BeginExiting(const std::shared_ptr<Process>& proc, std::string error);
  // Arms the exit watch (pidfd wait or the next poll); OnEnded when the leader ended.
  void WatchExit(const std::shared_ptr<Process>& proc);
  // The leader has ended: kills the rest of its group (if the leader is `unreaped`, so
  // the pgid is still its own), then reaps it once its stdout is read to the end (or
  // the grace is over).
  void OnEnded(const std::shared_ptr<Process>& proc, bool unreaped);
  // Reaps a process that ended on its own; its job (if any) fails with its exit status.
  void ReapEnded(const std::shared_ptr<Process>& proc);
  // SIGKILLs `proc`'s group and reaps it; its job (if any) is answered `kind` with `error`.
  void Kill(const std::shared_ptr<Process>& proc, HandlerResult::Kind kind, std::string error);
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
  ExitWatch exit_watch_;  // kPoll once pidfd_open has failed
  bool shutting_down_ = false;
  std::vector<std::shared_ptr<Process>> processes_;  // alive (not yet reaped)
  std::deque<PendingRun> waiting_;                   // Runs no process was free for
};

}  // namespace firebreak
