// `firebreak queue stats` and `firebreak dlq ...`: operate on the configured store
// directly, so they work whether or not a server is running.
#include <cstdio>
#include <functional>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/cli.h"
#include "cli/common.h"
#include "common/units.h"
#include "queue/queue.h"
#include "telemetry/log.h"

namespace firebreak::cli {
namespace {

// Loads the config (secrets are not needed) and opens its queue. On failure prints
// why and sets `exit_code` (usage error for a bad config, failure for the store).
std::unique_ptr<Queue> OpenForTools(const std::string& config_path, int& exit_code) {
  log::SendToStderr();  // e.g. a durability warning must not corrupt --json output
  auto config = LoadForCli(config_path, /*resolve_secrets=*/false);
  if (!config) {
    exit_code = kExitUsage;
    return nullptr;
  }
  auto queue = OpenQueue(config->queue, SystemClock::Instance());
  if (!queue.ok()) {
    std::cerr << "cannot open the queue: " << queue.status().message() << "\n";
    exit_code = kExitFailure;
    return nullptr;
  }
  return std::move(queue).value();
}

nlohmann::json JobJson(const Job& job) {
  nlohmann::json out = {
      {"id", job.id},
      {"type", job.type},
      {"source", job.source},
      {"dedupe_key", job.dedupe_key},
      {"state", JobStateName(job.state)},
      {"attempt", job.attempt},
      {"max_attempts", job.max_attempts},
      {"enqueued_at", FormatTimestampMs(job.enqueued_at_ms)},
      {"traceparent", job.traceparent},
  };
  out["headers"] =
      nlohmann::json::parse(job.headers_json.empty() ? "{}" : job.headers_json, nullptr, false);
  out["payload"] =
      nlohmann::json::parse(job.payload_json.empty() ? "null" : job.payload_json, nullptr, false);
  nlohmann::json attempts = nlohmann::json::array();
  for (const AttemptRecord& a : job.attempts) {
    attempts.push_back({{"attempt", a.attempt},
                        {"started_at", FormatTimestampMs(a.started_at_ms)},
                        {"duration_ms", a.duration_ms},
                        {"outcome", a.outcome},
                        {"error", a.error}});
  }
  out["attempts"] = attempts;
  return out;
}

}  // namespace

int QueueStats(const std::string& config_path, bool json) {
  int exit_code = kExitOk;
  auto queue = OpenForTools(config_path, exit_code);
  if (!queue) return exit_code;
  auto stats = queue->Stats();
  if (!stats.ok()) {
    std::cerr << "queue stats: " << stats.status().message() << "\n";
    return kExitFailure;
  }
  if (json) {
    nlohmann::json out = nlohmann::json::array();
    for (const TypeDepth& d : *stats) {
      out.push_back({{"job_type", d.type},
                     {"ready", d.ready},
                     {"delayed", d.delayed},
                     {"in_flight", d.in_flight},
                     {"dead", d.dead}});
    }
    std::cout << out.dump() << "\n";
    return kExitOk;
  }
  std::printf("%-32s %10s %10s %10s %10s\n", "JOB TYPE", "READY", "DELAYED", "IN_FLIGHT", "DEAD");
  for (const TypeDepth& d : *stats) {
    std::printf("%-32s %10lld %10lld %10lld %10lld\n", d.type.c_str(),
                static_cast<long long>(d.ready), static_cast<long long>(d.delayed),
                static_cast<long long>(d.in_flight), static_cast<long long>(d.dead));
  }
  return kExitOk;
}

int DlqList(const std::string& config_path, const std::string& type, int limit,
            const std::string& cursor) {
  int exit_code = kExitOk;
  auto queue = OpenForTools(config_path, exit_code);
  if (!queue) return exit_code;
  auto page = queue->ListDead(type, limit, cursor);
  if (!page.ok()) {
    std::cerr << "dlq list: " << page.status().message() << "\n";
    return kExitFailure;
  }
  std::printf("%-26s %-24s %-12s %8s  %s\n", "ID", "JOB TYPE", "SOURCE", "ATTEMPTS", "LAST ERROR");
  for (const Job& job : page->items) {
    std::string last_error = job.attempts.empty() ? "" : job.attempts.back().error;
    if (last_error.size() > 80) last_error = last_error.substr(0, 77) + "...";
    std::printf("%-26s %-24s %-12s %8d  %s\n", job.id.c_str(), job.type.c_str(), job.source.c_str(),
                job.attempt, last_error.c_str());
  }
  if (!page->next_cursor.empty()) {
    std::printf("more: --cursor %s\n", page->next_cursor.c_str());
  }
  return kExitOk;
}

int DlqShow(const std::string& config_path, const std::string& id) {
  int exit_code = kExitOk;
  auto queue = OpenForTools(config_path, exit_code);
  if (!queue) return exit_code;
  auto job = queue->GetJob(id);
  if (!job.ok()) {
    std::cerr << "dlq show " << id << ": " << job.status().message() << "\n";
    return kExitFailure;
  }
  std::cout << JobJson(*job).dump(2) << "\n";
  return kExitOk;
}

namespace {

// One dead job (`id`) or every dead job of `type` ("" = all), through `one` or `all`;
// `past` names the action in the output ("replayed", "purged").
int DlqWrite(const std::string& config_path, const std::string& id, bool all,
             const std::string& command, const std::string& past,
             const std::function<Status(Queue&)>& one,
             const std::function<Result<int64_t>(Queue&)>& every) {
  int exit_code = kExitOk;
  auto queue = OpenForTools(config_path, exit_code);
  if (!queue) return exit_code;
  if (!all) {
    Status st = one(*queue);
    if (!st.ok()) {
      std::cerr << "dlq " << command << " " << id << ": " << st.message() << "\n";
      return kExitFailure;
    }
    std::cout << past << " " << id << "\n";
    return kExitOk;
  }
  auto count = every(*queue);
  if (!count.ok()) {
    std::cerr << "dlq " << command << " --all: " << count.status().message() << "\n";
    return kExitFailure;
  }
  std::cout << past << " " << *count << " job(s)\n";
  return kExitOk;
}

}  // namespace

int DlqReplay(const std::string& config_path, const std::string& id, bool all,
              const std::string& type) {
  return DlqWrite(
      config_path, id, all, "replay", "replayed", [&](Queue& q) { return q.Replay(id); },
      [&](Queue& q) {
        auto count = q.ReplayAll(
            type, [](int64_t done) { std::cerr << "\rreplayed " << done << std::flush; });
        std::cerr << "\n";
        return count;
      });
}

int DlqPurge(const std::string& config_path, const std::string& id, bool all,
             const std::string& type) {
  return DlqWrite(
      config_path, id, all, "purge", "purged", [&](Queue& q) { return q.Purge(id); },
      [&](Queue& q) { return q.PurgeAll(type); });
}

}  // namespace firebreak::cli
