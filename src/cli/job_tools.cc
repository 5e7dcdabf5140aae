// `firebreak jobs ...`, `firebreak dead ...` and `firebreak queue pause|resume`: the
// admin API's job operations from a shell, on the configured store directly, through
// the same code (admin/job_actions.h, admin/bulk_operations.h) and the same audit log.
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <iostream>

#include "admin/bulk_operations.h"
#include "admin/job_actions.h"
#include "admin/job_view.h"
#include "cli/cli.h"
#include "cli/common.h"
#include "common/units.h"

namespace firebreak::cli {
namespace {

// Ctrl-C during a bulk operation stops it between two jobs, as DELETE of an operation.
std::atomic<bool> g_interrupted{false};
extern "C" void OnInterrupt(int) { g_interrupted.store(true); }

std::string Cell(std::string text, size_t width) {
  if (text.size() > width) text = text.substr(0, width - 3) + "...";
  return text;
}

void PrintJobRows(const std::vector<Job>& jobs) {
  std::printf("%-26s %-22s %-10s %-10s %7s  %-24s %s\n", "ID", "JOB TYPE", "SOURCE", "STATE",
              "ATTEMPT", "ENQUEUED", "LAST ERROR");
  for (const Job& job : jobs) {
    std::printf("%-26s %-22s %-10s %-10s %7d  %-24s %s\n", job.id.c_str(),
                Cell(job.type, 22).c_str(), Cell(job.source, 10).c_str(),
                JobStateName(job.state), job.attempt, FormatTimestampMs(job.enqueued_at_ms).c_str(),
                Cell(job.last_error, 60).c_str());
  }
}

// A progress bar on stderr when it is a terminal, a line per 10% otherwise.
class ProgressBar {
 public:
  ProgressBar(std::string verb, int64_t total)
      : verb_(std::move(verb)), total_(total), tty_(isatty(STDERR_FILENO) != 0) {}
  void Update(const BulkProgress& p) {
    const int64_t handled = p.done + p.failed;
    if (total_ <= 0) return;
    const int64_t tenth = handled * 10 / total_;
    if (!tty_ && tenth == last_tenth_) return;
    last_tenth_ = tenth;
    constexpr int kWidth = 30;
    const int filled = static_cast<int>(std::min<int64_t>(kWidth, handled * kWidth / total_));
    std::fprintf(stderr, "%s[%s%s] %lld/%lld %s%s", tty_ ? "\r" : "",
                 std::string(static_cast<size_t>(filled), '#').c_str(),
                 std::string(static_cast<size_t>(kWidth - filled), '.').c_str(),
                 static_cast<long long>(handled), static_cast<long long>(total_), verb_.c_str(),
                 p.failed > 0 ? (" (" + std::to_string(p.failed) + " failed)").c_str() : "");
    if (!tty_) std::fputc('\n', stderr);
  }
  void Finish() {
    if (tty_) std::fputc('\n', stderr);
  }

 private:
  std::string verb_;
  int64_t total_;
  bool tty_;
  int64_t last_tenth_ = -1;
};

}  // namespace

int JobsList(const std::string& config_path, const std::map<std::string, std::string>& params,
             int limit, const std::string& cursor, bool json) {
  Result<JobFilter> filter = JobFilterFromParams(params);
  if (!filter.ok()) {
    std::cerr << "jobs list: " << filter.status().message() << "\n";
    return kExitUsage;
  }
  int exit_code = kExitOk;
  auto queue = OpenForTools(config_path, exit_code);
  if (!queue) return exit_code;
  Result<JobPage> page = queue->ListJobs(*filter, limit, cursor);
  if (!page.ok()) {
    std::cerr << "jobs list: " << page.status().message() << "\n";
    return page.status().code() == StatusCode::kInvalidArgument ? kExitUsage : kExitFailure;
  }
  if (json) {
    nlohmann::json items = nlohmann::json::array();
    for (const Job& job : page->items) items.push_back(JobSummaryJson(job));
    std::cout << nlohmann::json{{"items", items},
                                {"next_cursor", page->next_cursor.empty()
                                                    ? nlohmann::json(nullptr)
                                                    : nlohmann::json(page->next_cursor)}}
                     .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)
              << "\n";
    return kExitOk;
  }
  PrintJobRows(page->items);
  if (!page->next_cursor.empty()) std::printf("more: --cursor %s\n", page->next_cursor.c_str());
  return kExitOk;
}

int JobsShow(const std::string& config_path, const std::string& id) {
  int exit_code = kExitOk;
  auto queue = OpenForTools(config_path, exit_code);
  if (!queue) return exit_code;
  Result<nlohmann::json> out = JobStoryJson(*queue, id);
  if (!out.ok()) {
    std::cerr << "jobs show " << id << ": " << out.status().message() << "\n";
    return kExitFailure;
  }
  std::cout << out->dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
  return kExitOk;
}

int JobsRetry(const std::string& config_path, const std::string& id) {
  int exit_code = kExitOk;
  auto queue = OpenForTools(config_path, exit_code);
  if (!queue) return exit_code;
  Result<RetryOutcome> retried = RetryJob(*queue, id, CliActor());
  if (!retried.ok()) {
    std::cerr << "jobs retry " << id << ": " << retried.status().message() << "\n";
    return kExitFailure;
  }
  if (retried->rerun) {
    std::cout << "retrying " << id << " as new job " << retried->job_id << "\n";
  } else {
    std::cout << id << " runs now\n";
  }
  return kExitOk;
}

int JobsCancel(const std::string& config_path, const std::string& id) {
  int exit_code = kExitOk;
  auto queue = OpenForTools(config_path, exit_code);
  if (!queue) return exit_code;
  if (Status st = CancelJob(*queue, id, CliActor()); !st.ok()) {
    std::cerr << "jobs cancel " << id << ": " << st.message() << "\n";
    return kExitFailure;
  }
  std::cout << "cancelled " << id << "\n";
  return kExitOk;
}

int QueuePause(const std::string& config_path, const std::string& type, bool paused) {
  int exit_code = kExitOk;
  auto queue = OpenForTools(config_path, exit_code);
  if (!queue) return exit_code;
  if (Status st = PauseJobType(*queue, type, paused, CliActor()); !st.ok()) {
    std::cerr << "queue " << (paused ? "pause " : "resume ") << type << ": " << st.message()
              << "\n";
    return kExitFailure;
  }
  std::cout << (paused ? "paused " : "resumed ") << type << "\n";
  return kExitOk;
}

int DeadGroups(const std::string& config_path, const std::string& filter_text) {
  Result<std::map<std::string, std::string>> params = ParseFilterList(filter_text);
  Result<DeadFilter> filter =
      params.ok() ? DeadFilterFromParams(*params) : Result<DeadFilter>(params.status());
  if (!filter.ok()) {
    std::cerr << "dead list: " << filter.status().message() << "\n";
    return kExitUsage;
  }
  int exit_code = kExitOk;
  auto queue = OpenForTools(config_path, exit_code);
  if (!queue) return exit_code;
  std::vector<DeadGroup> groups;
  int64_t scanned = 0;
  constexpr int64_t kMaxScan = 100'000;
  if (Status st = GroupDead(*queue, *filter, kMaxScan, groups, scanned); !st.ok()) {
    std::cerr << "dead list: " << st.message() << "\n";
    return kExitFailure;
  }
  std::printf("%-12s %7s  %-24s %s\n", "FINGERPRINT", "JOBS", "NEWEST", "ERROR");
  for (const DeadGroup& g : groups) {
    std::printf("%-12s %7lld  %-24s %s\n", g.fingerprint.c_str(), static_cast<long long>(g.count),
                FormatTimestampMs(g.newest_at_ms).c_str(), Cell(g.sample_error, 80).c_str());
  }
  if (scanned >= kMaxScan) std::printf("(grouped the newest %lld dead jobs)\n",
                                       static_cast<long long>(scanned));
  if (!groups.empty()) {
    std::printf("\nreplay one group: firebreak dead replay --filter fingerprint=%s\n",
                groups.front().fingerprint.c_str());
  }
  return kExitOk;
}

int DeadBulk(const std::string& config_path, bool replay, const std::string& filter_text,
             bool dry_run, double rate) {
  const char* command = replay ? "dead replay" : "dead delete";
  Result<std::map<std::string, std::string>> params = ParseFilterList(filter_text);
  Result<DeadFilter> filter =
      params.ok() ? DeadFilterFromParams(*params) : Result<DeadFilter>(params.status());
  if (!filter.ok()) {
    std::cerr << command << ": " << filter.status().message() << "\n";
    return kExitUsage;
  }
  int exit_code = kExitOk;
  auto queue = OpenForTools(config_path, exit_code);
  if (!queue) return exit_code;
  BulkRequest request;
  request.action = replay ? BulkAction::kReplay : BulkAction::kDelete;
  request.filter = *filter;
  request.rate_per_s = rate;
  request.actor = CliActor();
  // First the count (a dry run), so the progress bar knows its end.
  request.dry_run = true;
  std::atomic<bool> never{false};
  BulkProgress counted;
  if (Status st = RunBulk(*queue, request, never, nullptr, counted); !st.ok()) {
    std::cerr << command << ": " << st.message() << "\n";
    return kExitFailure;
  }
  std::cout << counted.matched << " dead job(s) match " << DeadFilterJson(*filter).dump() << "\n";
  if (dry_run || counted.matched == 0) return kExitOk;

  request.dry_run = false;
  g_interrupted.store(false);
  auto previous = std::signal(SIGINT, OnInterrupt);
  ProgressBar bar(replay ? "replayed" : "deleted", counted.matched);
  BulkProgress progress;
  Status st = RunBulk(
      *queue, request, g_interrupted, [&](const BulkProgress& p) { bar.Update(p); }, progress);
  bar.Finish();
  std::signal(SIGINT, previous);
  // The same audit entry as an API operation's.
  AuditBulk(*queue, request, progress,
            !st.ok() ? "failed" : g_interrupted.load() ? "cancelled" : "succeeded", "cli");
  std::cout << (replay ? "replayed " : "deleted ") << progress.done << " job(s)";
  if (progress.failed > 0) std::cout << ", " << progress.failed << " changed meanwhile";
  if (g_interrupted.load()) std::cout << " (interrupted)";
  std::cout << "\n";
  if (!st.ok()) {
    std::cerr << command << ": " << st.message() << "\n";
    return kExitFailure;
  }
  return kExitOk;
}

}  // namespace firebreak::cli
