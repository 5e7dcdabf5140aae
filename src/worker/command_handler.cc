#include "worker/command_handler.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "common/crypto.h"
#include "common/json_string.h"
#include "common/units.h"
#include "telemetry/log.h"

extern char** environ;  // POSIX; <unistd.h> declares it only under _GNU_SOURCE

namespace firebreak {
namespace {

using std::chrono::milliseconds;

constexpr size_t kMaxAnswerLine = 1024 * 1024;
// stderr volume one handler process may put in the log (see the header).
constexpr size_t kMaxStderrLine = 16 * 1024;      // logged of one line; the rest is counted
constexpr size_t kStderrBudgetBytes = 64 * 1024;  // logged per attempt, lines summed
constexpr int64_t kStderrBudgetLines = 200;       // logged per attempt
// Lines up to this long are their own repeat key; longer ones are keyed by a hash, so
// the logger's repeat table stays small.
constexpr size_t kMaxVerbatimRepeatKey = 256;

// The level of a handler's stderr line: a JSON line's own "level" (the SDKs write
// {"level":"warn",...}; "warning", "fatal" and "critical" too), else info. A string search,
// not a parse: the line is logged as it came either way.
log::Level StderrLineLevel(std::string_view line) {
  if (line.empty() || line.front() != '{') return log::Level::kInfo;
  size_t at = line.find("\"level\"");
  if (at == std::string_view::npos) return log::Level::kInfo;
  at = line.find_first_not_of(" \t", at + 7);
  if (at == std::string_view::npos || line[at] != ':') return log::Level::kInfo;
  at = line.find_first_not_of(" \t", at + 1);
  if (at == std::string_view::npos || line[at] != '"') return log::Level::kInfo;
  const std::string_view rest = line.substr(at + 1);
  const std::string_view level = rest.substr(0, rest.find('"'));
  if (level == "debug" || level == "trace") return log::Level::kDebug;
  if (level == "warn" || level == "warning") return log::Level::kWarn;
  if (level == "error" || level == "fatal" || level == "critical") return log::Level::kError;
  return log::Level::kInfo;
}
constexpr milliseconds kRetireGrace{1000};
constexpr milliseconds kStderrLinger{1000};  // a crash's traceback trails its exit
// Without a pidfd (Linux < 5.3), a handler's exit is looked for this often.
constexpr milliseconds kExitPollInterval{50};
// A handler that closed its stdout (or broke its stdin) and is still running this long
// after is killed: a process that is exiting on its own gets there in microseconds.
// Likewise, after the exit, this long is waited for its stdout to close so that an
// answer written just before is still read (only a process that escaped the group
// kill can hold it open longer).
constexpr milliseconds kExitingGrace{200};

std::string DescribeWaitStatus(std::optional<int> status) {
  if (!status) return "ended (exit status unknown)";
  if (WIFEXITED(*status)) return "exited with code " + std::to_string(WEXITSTATUS(*status));
  if (WIFSIGNALED(*status)) {
    int sig = WTERMSIG(*status);
    std::string text = "killed by signal " + std::to_string(sig);
    if (const char* name = sigabbrev_np(sig)) text += std::string(" (SIG") + name + ")";
    return text;
  }
  return "ended with wait status " + std::to_string(*status);
}

// SIGKILLs the process group a handler leads (pgid == its pid, see ExecChild). Only
// while the leader is not reaped: until then its pid, hence the pgid, cannot be reused.
void KillGroup(pid_t leader) {
  if (kill(-leader, SIGKILL) != 0) kill(leader, SIGKILL);  // not a group leader after all
}

enum class ChildState {
  kRunning,
  kEnded,            // a zombie: ended, not reaped (so its pid and pgid are still ours)
  kReapedElsewhere,  // ECHILD (SIGCHLD ignored): its pid may already be someone else's
};

// Looks without reaping (WNOWAIT).
ChildState StateOf(pid_t pid) {
  siginfo_t info;
  std::memset(&info, 0, sizeof info);
  if (waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT) != 0) {
    return errno == EINTR ? ChildState::kRunning : ChildState::kReapedElsewhere;
  }
  return info.si_pid == pid ? ChildState::kEnded : ChildState::kRunning;
}

// A pidfd for `pid` (O_CLOEXEC), or -1 with errno.
int OpenPidfd(pid_t pid) {
#ifdef SYS_pidfd_open
  return static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
#else
  (void)pid;
  errno = ENOSYS;
  return -1;
#endif
}

// nullopt if the child was already reaped elsewhere (e.g. SIGCHLD set to SIG_IGN).
std::optional<int> WaitBlocking(pid_t pid) {
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return std::nullopt;
  }
  return status;
}

// The PATH search happens here, before fork, so the child only calls execve.
Result<std::string> ResolveExecutable(const std::string& name) {
  if (name.find('/') != std::string::npos) return name;
  const char* path_env = std::getenv("PATH");
  std::string_view path = path_env != nullptr ? path_env : "/usr/local/bin:/usr/bin:/bin";
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find(':', start);
    if (end == std::string_view::npos) end = path.size();
    std::string dir(path.substr(start, end - start));
    std::string candidate = (dir.empty() ? std::string(".") : dir) + "/" + name;
    struct stat st {};
    if (stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
        access(candidate.c_str(), X_OK) == 0) {
      return candidate;
    }
    start = end + 1;
  }
  return Status(StatusCode::kUnavailable, "handler command not found in PATH: " + name);
}

// Closes [low, high] (inclusive); close_range when the kernel has it, else one by one.
void CloseFdRange(unsigned low, unsigned high, unsigned fd_limit) {
  if (low > high) return;
  if (syscall(SYS_close_range, low, high, 0) == 0) return;
  for (unsigned fd = low; fd <= high && fd < fd_limit; ++fd) close(static_cast<int>(fd));
}

// Runs in the forked child. The parent may have other threads that held locks at
// fork time, so only async-signal-safe calls are allowed until execve.
[[noreturn]] void ExecChild(const char* path, char* const* argv, char* const* envp, int stdin_fd,
                            int stdout_fd, int stderr_fd, int error_fd, pid_t parent,
                            const sigset_t* empty_mask, unsigned fd_limit) {
  auto fail = [error_fd](int err) {
    ssize_t ignored = write(error_fd, &err, sizeof err);
    (void)ignored;
    _exit(127);
  };
  // Its own process group, so that every kill reaches whatever the handler forked
  // (the parent calls setpgid too; whichever runs first wins the race with exec).
  if (setpgid(0, 0) != 0) fail(errno);
  // Handlers die with firebreak, even on kill -9.
  if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) fail(errno);
  if (getppid() != parent) _exit(127);  // the parent died before prctl took effect
  struct sigaction default_action;
  std::memset(&default_action, 0, sizeof default_action);
  default_action.sa_handler = SIG_DFL;
  sigaction(SIGPIPE, &default_action, nullptr);  // ignored dispositions survive exec
  sigprocmask(SIG_SETMASK, empty_mask, nullptr);
  // Keep every pipe end clear of 0..2 so one dup2 cannot clobber another's source.
  for (int* fd : {&stdin_fd, &stdout_fd, &stderr_fd, &error_fd}) {
    if (*fd < 3) {
      int moved = fcntl(*fd, F_DUPFD_CLOEXEC, 3);
      if (moved < 0) fail(errno);
      *fd = moved;
    }
  }
  if (dup2(stdin_fd, 0) < 0 || dup2(stdout_fd, 1) < 0 || dup2(stderr_fd, 2) < 0) fail(errno);
  // Not every descriptor of ours is O_CLOEXEC (Asio's sockets are not).
  unsigned keep = static_cast<unsigned>(error_fd);
  CloseFdRange(3, keep - 1, fd_limit);
  CloseFdRange(keep + 1, ~0U, fd_limit);
  execve(path, argv, envp);
  fail(errno);
  _exit(127);  // not reached; fail() does not return
}

struct Pipe {
  int read_end = -1;
  int write_end = -1;
};

void CloseFd(int& fd) {
  if (fd >= 0) close(fd);
  fd = -1;
}

// One handler process's stderr, split into "handler stderr" log lines and held to a
// volume the log can take (the header gives the rules). Lines are attributed to the
// running or the last job: they often trail its answer. Single-threaded (the
// handler's io thread); it outlives the handler when a dead process's last lines are
// read after it left the pool.
class StderrLog {
 public:
  StderrLog(std::string job_type, pid_t pid) : job_type_(std::move(job_type)), pid_(pid) {}

  // A new attempt: what the last budget dropped is reported, and the budget is full again.
  void StartAttempt(std::string job_id, std::string trace_id) {
    ReportDropped();
    job_id_ = std::move(job_id);
    trace_id_ = std::move(trace_id);
    logged_bytes_ = 0;
    logged_lines_ = 0;
    exhausted_ = false;
  }

  void Append(std::string_view bytes) {
    while (!bytes.empty()) {
      size_t newline = bytes.find('\n');
      std::string_view piece = bytes.substr(0, newline);
      if (in_long_line_) {
        long_line_dropped_ += piece.size();
      } else if (line_.size() + piece.size() <= kMaxStderrLine) {
        line_.append(piece);
      } else {
        // Keep kMaxStderrLine bytes, cut back to a UTF-8 character boundary (by at most
        // 3 bytes: what is not UTF-8 is cut anywhere).
        size_t taken = std::min(piece.size(), kMaxStderrLine + 4 - line_.size());
        line_.append(piece.substr(0, taken));
        size_t cut = kMaxStderrLine;
        while (cut > kMaxStderrLine - 3 &&
               (static_cast<unsigned char>(line_[cut]) & 0xC0) == 0x80) {
          --cut;
        }
        long_line_dropped_ = (line_.size() - cut) + (piece.size() - taken);
        line_.resize(cut);
        long_line_logged_ = Offer(line_, /*truncated=*/true);
        line_.clear();
        in_long_line_ = true;
      }
      if (newline == std::string_view::npos) return;
      EndLine();
      bytes.remove_prefix(newline + 1);
    }
  }

  // The attempt ended (its stderr may still trail in and counts against its budget).
  void ReportDropped() {
    if (dropped_lines_ == 0 && dropped_bytes_ == 0) return;
    log::Warn("handler stderr dropped", {{"job_id", job_id_},
                                         {"job_type", job_type_},
                                         {"pid", static_cast<int>(pid_)},
                                         {"lines_dropped", dropped_lines_},
                                         {"bytes_dropped", dropped_bytes_},
                                         {"trace_id", trace_id_}});
    dropped_lines_ = 0;
    dropped_bytes_ = 0;
  }

  // End of the stream: a last line without its newline is logged, drops are reported.
  void Finish() {
    if (in_long_line_ || !line_.empty()) EndLine();
    ReportDropped();
  }

 private:
  void EndLine() {
    if (!in_long_line_) {
      std::string_view line = line_;
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      if (!line.empty()) Offer(line, /*truncated=*/false);
      line_.clear();
      return;
    }
    in_long_line_ = false;
    if (!long_line_logged_) {
      dropped_bytes_ += long_line_dropped_;  // its start was dropped by the budget
      return;
    }
    // At most one per logged long line, which takes a quarter of the budget.
    log::Info("handler stderr line truncated", {{"job_id", job_id_},
                                                {"job_type", job_type_},
                                                {"pid", static_cast<int>(pid_)},
                                                {"bytes_dropped", long_line_dropped_},
                                                {"trace_id", trace_id_}});
  }

  // Logs `line` if the budget allows (true), else counts it as dropped and closes
  // the budget until the next attempt.
  bool Offer(std::string_view line, bool truncated) {
    if (exhausted_ || logged_lines_ >= kStderrBudgetLines ||
        logged_bytes_ + line.size() > kStderrBudgetBytes) {
      exhausted_ = true;
      ++dropped_lines_;
      dropped_bytes_ += static_cast<int64_t>(line.size());
      return false;
    }
    ++logged_lines_;
    logged_bytes_ += line.size();
    std::string key = job_type_;
    key.push_back('\n');
    key.push_back(truncated ? 'T' : 'L');
    if (line.size() <= kMaxVerbatimRepeatKey) {
      key.append(line);
    } else {
      key.append(std::to_string(std::hash<std::string_view>{}(line)))
          .append(":")
          .append(std::to_string(line.size()));
    }
    if (truncated) {
      log::WriteLimited(StderrLineLevel(line), key, "handler stderr",
                        {{"job_id", job_id_},
                         {"job_type", job_type_},
                         {"pid", static_cast<int>(pid_)},
                         {"line", line},
                         {"truncated", true},
                         {"trace_id", trace_id_}});
    } else {
      log::WriteLimited(StderrLineLevel(line), key, "handler stderr",
                        {{"job_id", job_id_},
                         {"job_type", job_type_},
                         {"pid", static_cast<int>(pid_)},
                         {"line", line},
                         {"trace_id", trace_id_}});
    }
    return true;
  }

  const std::string job_type_;
  const pid_t pid_;
  std::string job_id_;
  std::string trace_id_;
  // The line being read: its start, or, past kMaxStderrLine, how much of it was dropped.
  std::string line_;
  bool in_long_line_ = false;
  bool long_line_logged_ = false;  // its first kMaxStderrLine bytes made it to the log
  int64_t long_line_dropped_ = 0;
  // This attempt's budget, and what was dropped since the last report.
  size_t logged_bytes_ = 0;
  int64_t logged_lines_ = 0;
  bool exhausted_ = false;
  int64_t dropped_lines_ = 0;
  int64_t dropped_bytes_ = 0;
};

}  // namespace

struct CommandHandler::Process {
  enum class State {
    kIdle,      // waiting for a job
    kBusy,      // running `job`
    kRetiring,  // stdin closed by Shutdown; should exit on its own
    kExiting,   // ended, closed stdout or broke stdin: no more jobs; reaped soon
    kDead,      // reaped
  };

  Process(boost::asio::io_context& io, pid_t process_id, std::string type)
      : pid(process_id),
        job_type(std::move(type)),
        stdin_pipe(io),
        stdout_pipe(io),
        stderr_pipe(io),
        exit_watch(io),
        exit_poll_timer(io),
        job_timer(io),
        aux_timer(io),
        stderr_log(job_type, process_id) {}

  void CloseStdinAndStdout() {
    boost::system::error_code ignored;
    stdin_pipe.close(ignored);
    stdout_pipe.close(ignored);
  }

  // After the reap: the pid may be reused now, so nothing may watch it any more.
  void StopWatchingExit() {
    boost::system::error_code ignored;
    exit_watch.close(ignored);
    exit_poll_timer.cancel();
  }

  CommandHandler* owner = nullptr;  // null once reaped or once the handler is destroyed
  const pid_t pid;
  const std::string job_type;
  State state = State::kIdle;
  bool retiring = false;      // asked to stop by Shutdown
  bool stdout_eof = false;    // read to its end
  bool ended = false;         // the exit watch saw it end; its group is killed; not reaped
  std::string exiting_error;  // why it is killed if it is still running after the grace
  boost::asio::posix::stream_descriptor stdin_pipe;
  boost::asio::posix::stream_descriptor stdout_pipe;
  boost::asio::posix::stream_descriptor stderr_pipe;
  boost::asio::posix::stream_descriptor exit_watch;  // the pidfd; readable once it ended
  boost::asio::steady_timer exit_poll_timer;         // instead, without a pidfd
  boost::asio::steady_timer job_timer;               // the running job's timeout
  boost::asio::steady_timer aux_timer;               // retire/exiting grace, stderr linger
  // Bumped whenever the job or the aux timer's purpose changes, so a completion that
  // was already queued can tell it is stale.
  uint64_t job_seq = 0;
  uint64_t aux_seq = 0;
  std::optional<PendingRun> job;
  std::string stdin_line;
  std::array<char, 16 * 1024> stdout_chunk{};
  std::string stdout_pending;
  std::array<char, 16 * 1024> stderr_chunk{};
  StderrLog stderr_log;
};

Result<std::unique_ptr<CommandHandler>> CommandHandler::Create(const JobConfig& job,
                                                               const std::string& sidecar,
                                                               boost::asio::io_context& io,
                                                               ExitWatch exit_watch) {
  if (job.handler.command.empty() || job.handler.command.front().empty()) {
    return InvalidArgument("job " + job.type + ": handler command is empty");
  }
  // A handler that dies with our write pending must give EPIPE, not kill firebreak.
  signal(SIGPIPE, SIG_IGN);
  return std::unique_ptr<CommandHandler>(new CommandHandler(job, sidecar, io, exit_watch));
}

namespace {

std::vector<std::string> HandlerEnvironment(const std::string& sidecar) {
  constexpr std::string_view kSidecarVar = "FIREBREAK_SIDECAR=";
  std::vector<std::string> env;
  for (char** entry = environ; entry != nullptr && *entry != nullptr; ++entry) {
    std::string_view variable(*entry);
    if (variable.substr(0, kSidecarVar.size()) == kSidecarVar) continue;
    env.emplace_back(variable);
  }
  env.push_back(std::string(kSidecarVar) + sidecar);
  return env;
}

}  // namespace

CommandHandler::CommandHandler(const JobConfig& job, const std::string& sidecar,
                               boost::asio::io_context& io, ExitWatch exit_watch)
    : io_(io),
      job_type_(job.type),
      command_(job.handler.command),
      environment_(HandlerEnvironment(sidecar)),
      max_processes_(static_cast<size_t>(std::max(1, job.concurrency))),
      exit_watch_(exit_watch) {}

CommandHandler::~CommandHandler() {
  for (const std::shared_ptr<Process>& proc : processes_) {
    proc->owner = nullptr;
    proc->state = Process::State::kDead;
    KillGroup(proc->pid);
    WaitBlocking(proc->pid);
    proc->StopWatchingExit();
    proc->CloseStdinAndStdout();
    boost::system::error_code ignored;
    proc->stderr_pipe.close(ignored);
    proc->stderr_log.Finish();  // a last partial line, and what the budget dropped
    proc->job_timer.cancel();
    proc->aux_timer.cancel();
    if (proc->job) {
      Answer(std::move(proc->job->done),
             {HandlerResult::Kind::kFailed, "handler stopped", {}, {}, {}, {}});
      proc->job.reset();
    }
  }
  for (PendingRun& run : waiting_) {
    Answer(std::move(run.done), {HandlerResult::Kind::kFailed, "handler stopped", {}, {}, {}, {}});
  }
}

void CommandHandler::Run(HandlerJob job, std::chrono::milliseconds timeout, HandlerCallback done) {
  if (shutting_down_) {
    Answer(std::move(done), {HandlerResult::Kind::kFailed, "handler is shut down", {}, {}, {}, {}});
    return;
  }
  waiting_.push_back({std::move(job.id), std::move(job.envelope_json), timeout, std::move(done),
                      TraceIdOf(job.traceparent)});
  Dispatch();
}

void CommandHandler::Shutdown() {
  shutting_down_ = true;
  if (!waiting_.empty()) return;  // busy processes retire once the queue drains
  for (const std::shared_ptr<Process>& proc : processes_) {
    if (proc->state == Process::State::kIdle) Retire(proc);
  }
}

bool CommandHandler::Drained() const {
  // Busy processes run attempts the worker has already given up on; only idle,
  // retiring and exiting ones are worth waiting for.
  return std::none_of(
      processes_.begin(), processes_.end(),
      [](const std::shared_ptr<Process>& proc) { return proc->state != Process::State::kBusy; });
}

std::vector<pid_t> CommandHandler::ProcessIds() const {
  std::vector<pid_t> pids;
  for (const std::shared_ptr<Process>& proc : processes_) pids.push_back(proc->pid);
  return pids;
}

void CommandHandler::Answer(HandlerCallback done, HandlerResult result) {
  boost::asio::post(io_, [done = std::move(done), result = std::move(result)]() mutable {
    done(std::move(result));
  });
}

void CommandHandler::Dispatch() {
  while (!waiting_.empty()) {
    std::shared_ptr<Process> idle;
    for (const std::shared_ptr<Process>& proc : processes_) {
      if (proc->state == Process::State::kIdle) {
        idle = proc;
        break;
      }
    }
    if (!idle) {
      if (processes_.size() >= max_processes_) return;
      Result<std::shared_ptr<Process>> spawned = Spawn();
      if (!spawned.ok()) {
        PendingRun run = std::move(waiting_.front());
        waiting_.pop_front();
        log::Error("handler process failed to start", {{"job_id", run.job_id},
                                                       {"job_type", job_type_},
                                                       {"error", spawned.status().message()},
                                                       {"trace_id", run.trace_id}});
        Answer(std::move(run.done),
               {HandlerResult::Kind::kFailed, spawned.status().message(), {}, {}, {}, {}});
        continue;
      }
      idle = std::move(spawned).value();
      processes_.push_back(idle);
    }
    PendingRun run = std::move(waiting_.front());
    waiting_.pop_front();
    StartJob(idle, std::move(run));
  }
}

Result<std::shared_ptr<CommandHandler::Process>> CommandHandler::Spawn() {
  Result<std::string> executable = ResolveExecutable(command_.front());
  if (!executable.ok()) return executable.status();

  // Everything the child needs is built now: after fork it may not allocate.
  std::vector<char*> argv;
  for (const std::string& arg : command_) argv.push_back(const_cast<char*>(arg.c_str()));
  argv.push_back(nullptr);
  std::vector<char*> envp;
  for (const std::string& var : environment_) envp.push_back(const_cast<char*>(var.c_str()));
  envp.push_back(nullptr);
  sigset_t empty_mask;
  sigemptyset(&empty_mask);
  struct rlimit fd_rlimit {};
  unsigned fd_limit = 65536;
  if (getrlimit(RLIMIT_NOFILE, &fd_rlimit) == 0 && fd_rlimit.rlim_cur < fd_limit) {
    fd_limit = static_cast<unsigned>(fd_rlimit.rlim_cur);
  }

  // All ends O_CLOEXEC so no other child inherits them; dup2 in the child clears it
  // on 0/1/2.
  std::array<Pipe, 4> pipes;  // stdin, stdout, stderr, exec error report
  auto close_all = [&pipes] {
    for (Pipe& p : pipes) {
      CloseFd(p.read_end);
      CloseFd(p.write_end);
    }
  };
  for (Pipe& p : pipes) {
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) {
      int err = errno;
      close_all();
      return Status(StatusCode::kUnavailable, std::string("pipe: ") + std::strerror(err));
    }
    p.read_end = fds[0];
    p.write_end = fds[1];
  }
  Pipe& in = pipes[0];
  Pipe& out = pipes[1];
  Pipe& err = pipes[2];
  Pipe& exec_report = pipes[3];

  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) {
    int fork_errno = errno;
    close_all();
    return Status(StatusCode::kUnavailable, std::string("fork: ") + std::strerror(fork_errno));
  }
  if (pid == 0) {
    ExecChild(executable->c_str(), argv.data(), envp.data(), in.read_end, out.write_end,
              err.write_end, exec_report.write_end, parent, &empty_mask, fd_limit);
  }
  // Also here, so the group exists before Spawn returns whichever of us runs first
  // (EACCES once the child has exec'd: then its own setpgid already ran).
  setpgid(pid, pid);

  CloseFd(in.read_end);
  CloseFd(out.write_end);
  CloseFd(err.write_end);
  CloseFd(exec_report.write_end);
  // EOF here means execve succeeded (the report pipe closed on exec); an int is the
  // child's errno. The child gets there in microseconds, so this read barely blocks.
  int child_errno = 0;
  ssize_t n;
  do {
    n = read(exec_report.read_end, &child_errno, sizeof child_errno);
  } while (n < 0 && errno == EINTR);
  CloseFd(exec_report.read_end);
  if (n == static_cast<ssize_t>(sizeof child_errno)) {
    WaitBlocking(pid);
    close_all();
    return Status(StatusCode::kUnavailable,
                  "exec " + *executable + ": " + std::strerror(child_errno));
  }

  auto proc = std::make_shared<Process>(io_, pid, job_type_);
  proc->owner = this;
  boost::system::error_code ec;
  if (exit_watch_ == ExitWatch::kPidfd) {
    int pidfd = OpenPidfd(pid);
    if (pidfd >= 0) {
      proc->exit_watch.assign(pidfd, ec);
    } else {
      exit_watch_ = ExitWatch::kPoll;
      log::Warn("pidfd_open failed; handler exits are polled for",
                {{"job_type", job_type_},
                 {"error", std::strerror(errno)},
                 {"poll_interval_ms", static_cast<int64_t>(kExitPollInterval.count())}});
    }
  }
  proc->stdin_pipe.assign(in.write_end, ec);
  in.write_end = -1;
  proc->stdout_pipe.assign(out.read_end, ec);
  out.read_end = -1;
  proc->stderr_pipe.assign(err.read_end, ec);
  err.read_end = -1;
  proc->stdin_pipe.non_blocking(true, ec);
  proc->stdout_pipe.non_blocking(true, ec);
  proc->stderr_pipe.non_blocking(true, ec);
  log::Info("handler process started", {{"job_type", job_type_}, {"pid", static_cast<int>(pid)}});
  ReadStdout(proc);
  ReadStderr(proc);
  WatchExit(proc);
  return proc;
}

void CommandHandler::StartJob(const std::shared_ptr<Process>& proc, PendingRun run) {
  proc->state = Process::State::kBusy;
  uint64_t seq = ++proc->job_seq;
  proc->stderr_log.StartAttempt(run.job_id, run.trace_id);
  // The envelope is one JSON line; stray newlines (JSON whitespace) would split it.
  proc->stdin_line = std::move(run.envelope_json);
  std::replace(proc->stdin_line.begin(), proc->stdin_line.end(), '\n', ' ');
  std::replace(proc->stdin_line.begin(), proc->stdin_line.end(), '\r', ' ');
  proc->stdin_line.push_back('\n');
  std::chrono::milliseconds timeout = run.timeout;
  proc->job = std::move(run);

  proc->job_timer.expires_after(timeout);
  proc->job_timer.async_wait([proc, seq, timeout](const boost::system::error_code& ec) {
    CommandHandler* self = proc->owner;
    if (ec || self == nullptr || proc->job_seq != seq || proc->state != Process::State::kBusy) {
      return;
    }
    self->Kill(proc, HandlerResult::Kind::kTimedOut, "timed out after " + FormatDuration(timeout));
  });
  boost::asio::async_write(proc->stdin_pipe, boost::asio::buffer(proc->stdin_line),
                           [proc, seq](const boost::system::error_code& ec, size_t) {
                             CommandHandler* self = proc->owner;
                             if (!ec || self == nullptr || proc->job_seq != seq ||
                                 proc->state != Process::State::kBusy) {
                               return;
                             }
                             self->BeginExiting(proc, "write to handler: " + ec.message());
                           });
}

void CommandHandler::ReadStdout(const std::shared_ptr<Process>& proc) {
  proc->stdout_pipe.async_read_some(
      boost::asio::buffer(proc->stdout_chunk),
      [proc](const boost::system::error_code& ec, size_t bytes) {
        CommandHandler* self = proc->owner;
        if (self == nullptr) return;
        if (ec) {
          proc->stdout_eof = true;
          if (proc->ended) {
            self->ReapEnded(proc);
          } else {
            self->BeginExiting(proc, "handler closed its stdout");
          }
          return;
        }
        proc->stdout_pending.append(proc->stdout_chunk.data(), bytes);
        self->ConsumeStdout(proc);
        if (proc->owner != nullptr && proc->state != Process::State::kDead) self->ReadStdout(proc);
      });
}

void CommandHandler::ReadStderr(const std::shared_ptr<Process>& proc) {
  // Needs nothing from the handler: a dead process's last lines are logged even
  // after it has left the pool.
  proc->stderr_pipe.async_read_some(
      boost::asio::buffer(proc->stderr_chunk),
      [proc](const boost::system::error_code& ec, size_t bytes) {
        if (!ec) {
          proc->stderr_log.Append(std::string_view(proc->stderr_chunk.data(), bytes));
          ReadStderr(proc);
          return;
        }
        // EOF, or closed by us (the linger after death is over, the handler is gone).
        proc->stderr_log.Finish();
        boost::system::error_code ignored;
        proc->stderr_pipe.close(ignored);
        if (proc->state == Process::State::kDead) proc->aux_timer.cancel();  // linger over
      });
}

void CommandHandler::ConsumeStdout(const std::shared_ptr<Process>& proc) {
  while (proc->state != Process::State::kDead) {
    size_t newline = proc->stdout_pending.find('\n');
    if (newline == std::string::npos ? proc->stdout_pending.size() > kMaxAnswerLine
                                     : newline > kMaxAnswerLine) {
      Kill(proc, HandlerResult::Kind::kFailed, "protocol error: answer line longer than 1 MiB");
      return;
    }
    if (newline == std::string::npos) return;
    std::string line = proc->stdout_pending.substr(0, newline);
    proc->stdout_pending.erase(0, newline + 1);
    OnAnswerLine(proc, line);
  }
}

void CommandHandler::OnAnswerLine(const std::shared_ptr<Process>& proc, std::string_view line) {
  if (line.find_first_not_of(" \t\r") == std::string_view::npos) return;  // blank line
  if (!proc->job) {
    Kill(proc, HandlerResult::Kind::kFailed,
         "protocol error: output while no job was running: " + QuoteForError(line));
    return;
  }
  Result<HandlerResult> answer = ParseCommandAnswer(line, proc->job->job_id);
  if (!answer.ok()) {
    Kill(proc, HandlerResult::Kind::kFailed, "protocol error: " + answer.status().message());
    return;
  }
  PendingRun run = std::move(*proc->job);
  proc->job.reset();
  ++proc->job_seq;
  proc->job_timer.cancel();
  Answer(std::move(run.done), std::move(answer).value());
  proc->stderr_log.ReportDropped();
  // An answer written just before the process ended still counts; the process does not.
  if (proc->state == Process::State::kBusy) BecomeIdle(proc);
}

void CommandHandler::BecomeIdle(const std::shared_ptr<Process>& proc) {
  proc->state = Process::State::kIdle;
  if (shutting_down_ && waiting_.empty()) {
    Retire(proc);
    return;
  }
  Dispatch();
}

void CommandHandler::Retire(const std::shared_ptr<Process>& proc) {
  proc->state = Process::State::kRetiring;
  proc->retiring = true;
  boost::system::error_code ignored;
  proc->stdin_pipe.close(ignored);  // EOF on stdin: a well-behaved handler exits now
  uint64_t seq = ++proc->aux_seq;
  proc->aux_timer.expires_after(kRetireGrace);
  proc->aux_timer.async_wait([proc, seq](const boost::system::error_code& ec) {
    CommandHandler* self = proc->owner;
    if (ec || self == nullptr || proc->aux_seq != seq || proc->state != Process::State::kRetiring) {
      return;
    }
    self->Kill(proc, HandlerResult::Kind::kFailed, "did not exit within 1s of stdin closing");
  });
}

void CommandHandler::BeginExiting(const std::shared_ptr<Process>& proc, std::string error) {
  if (proc->state == Process::State::kExiting || proc->state == Process::State::kDead) return;
  proc->state = Process::State::kExiting;
  proc->exiting_error = std::move(error);
  proc->job_timer.cancel();  // the grace below is shorter than any timeout worth having
  boost::system::error_code ignored;
  proc->stdin_pipe.close(ignored);
  uint64_t seq = ++proc->aux_seq;
  proc->aux_timer.expires_after(kExitingGrace);
  proc->aux_timer.async_wait([proc, seq](const boost::system::error_code& ec) {
    CommandHandler* self = proc->owner;
    if (ec || self == nullptr || proc->aux_seq != seq || proc->state != Process::State::kExiting) {
      return;
    }
    if (proc->ended) {
      self->ReapEnded(proc);  // someone outside its group holds its stdout: stop waiting
    } else {
      self->Kill(proc, HandlerResult::Kind::kFailed, proc->exiting_error);
    }
  });
}

void CommandHandler::WatchExit(const std::shared_ptr<Process>& proc) {
  auto on_event = [proc](const boost::system::error_code& ec) {
    CommandHandler* self = proc->owner;
    if (ec || self == nullptr || proc->state == Process::State::kDead || proc->ended) return;
    if (ChildState state = StateOf(proc->pid); state != ChildState::kRunning) {
      self->OnEnded(proc, state == ChildState::kEnded);
    } else {
      self->WatchExit(proc);  // the next poll (a pidfd is only readable once it ended)
    }
  };
  if (proc->exit_watch.is_open()) {
    proc->exit_watch.async_wait(boost::asio::posix::descriptor_base::wait_read, on_event);
  } else {
    proc->exit_poll_timer.expires_after(kExitPollInterval);
    proc->exit_poll_timer.async_wait(on_event);
  }
}

void CommandHandler::OnEnded(const std::shared_ptr<Process>& proc, bool unreaped) {
  proc->ended = true;
  // The leader is a zombie until reaped, so its pgid still names only its group:
  // whatever it left running (children holding its pipes, say) goes now.
  if (unreaped) KillGroup(proc->pid);
  if (proc->stdout_eof) {
    ReapEnded(proc);
    return;
  }
  // What it wrote before it ended is still in the pipe (maybe the answer): read on
  // to EOF, which the group kill brings at once.
  BeginExiting(proc, "");
}

void CommandHandler::ReapEnded(const std::shared_ptr<Process>& proc) {
  std::optional<int> status = WaitBlocking(proc->pid);
  OnReaped(proc, status, /*killed_by_us=*/false, HandlerResult::Kind::kFailed, "");
}

void CommandHandler::Kill(const std::shared_ptr<Process>& proc, HandlerResult::Kind kind,
                          std::string error) {
  KillGroup(proc->pid);
  std::optional<int> status = WaitBlocking(proc->pid);
  OnReaped(proc, status, /*killed_by_us=*/true, kind, error);
}

void CommandHandler::OnReaped(const std::shared_ptr<Process>& proc, std::optional<int> wait_status,
                              bool killed_by_us, HandlerResult::Kind kind,
                              const std::string& error) {
  proc->state = Process::State::kDead;
  proc->owner = nullptr;
  processes_.erase(std::remove(processes_.begin(), processes_.end(), proc), processes_.end());
  ++proc->job_seq;
  proc->job_timer.cancel();
  proc->StopWatchingExit();
  proc->CloseStdinAndStdout();

  std::string how = DescribeWaitStatus(wait_status);
  int pid = static_cast<int>(proc->pid);
  if (proc->job) {
    PendingRun run = std::move(*proc->job);
    proc->job.reset();
    std::string text = killed_by_us ? error : "handler " + how;
    log::Warn("handler process ended during a job", {{"job_id", run.job_id},
                                                     {"job_type", job_type_},
                                                     {"pid", pid},
                                                     {"error", text},
                                                     {"trace_id", run.trace_id}});
    Answer(std::move(run.done), {kind, TruncateUtf8(text, kMaxAnswerErrorBytes), {}, {}, {}, {}});
    proc->stderr_log.ReportDropped();
  } else if (killed_by_us) {
    log::Warn("handler process killed", {{"job_type", job_type_}, {"pid", pid}, {"error", error}});
  } else if (proc->retiring) {
    log::Info("handler process stopped", {{"job_type", job_type_}, {"pid", pid}, {"status", how}});
  } else {
    log::Warn("handler process exited while idle",
              {{"job_type", job_type_}, {"pid", pid}, {"status", how}});
  }

  // A crash's last stderr lines may still be in the pipe: keep reading them for a
  // moment, but not forever (a process that left the group may hold the pipe open).
  if (proc->stderr_pipe.is_open()) {
    uint64_t seq = ++proc->aux_seq;
    proc->aux_timer.expires_after(kStderrLinger);
    proc->aux_timer.async_wait([proc, seq](const boost::system::error_code& ec) {
      if (ec || proc->aux_seq != seq) return;
      boost::system::error_code ignored;
      proc->stderr_pipe.close(ignored);
    });
  } else {
    proc->aux_timer.cancel();
  }
  Dispatch();
}

}  // namespace firebreak
