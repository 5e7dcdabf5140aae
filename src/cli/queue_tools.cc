// `firebreak queue stats` and `firebreak dlq ...`: operate on the configured store
// directly, so they work whether or not a server is running.
#include <cstdio>
#include <functional>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>

#include "admin/admin_api.h"
#include "admin/job_actions.h"
#include "admin/job_view.h"
#include "cli/cli.h"
#include "cli/common.h"
#include "common/units.h"
#include "queue/capacity.h"
#include "queue/queue.h"
#include "telemetry/log.h"

namespace firebreak::cli {
// "52ms", "1.30s", "2m05s"; "-" when unknown.
std::string JobTime(const std::optional<double>& seconds) {
  if (!seconds) return "-";
  char buf[32];
  if (*seconds < 1) {
    std::snprintf(buf, sizeof buf, "%.0fms", *seconds * 1000);
  } else if (*seconds < 60) {
    std::snprintf(buf, sizeof buf, "%.2fs", *seconds);
  } else {
    auto whole = static_cast<long long>(*seconds);
    std::snprintf(buf, sizeof buf, "%lldm%02llds", whole / 60, whole % 60);
  }
  return buf;
}

int QueueStats(const std::string& config_path, bool json) {
  int exit_code = kExitOk;
  Config config;
  auto queue = OpenForTools(config_path, exit_code, &config);
  if (!queue) return exit_code;
  auto stats = queue->Stats();
  if (!stats.ok()) {
    std::cerr << "queue stats: " << stats.status().message() << "\n";
    return kExitFailure;
  }
  auto throughput = queue->Throughput(kCapacityWindowMs);
  if (!throughput.ok()) {
    std::cerr << "queue stats: " << throughput.status().message() << "\n";
    return kExitFailure;
  }
  std::map<std::string, TypeDepth> depth;
  for (const TypeDepth& d : *stats) depth[d.type] = d;
  // Every type with jobs, recent traffic or a place in the config, sorted by type.
  std::vector<TypeCapacity> rows =
      ComputeCapacity(*throughput, *stats, ConfiguredConcurrency(config), kCapacityWindowMs);
  if (json) {
    nlohmann::json out = nlohmann::json::array();
    for (const TypeCapacity& c : rows) {
      nlohmann::json row = {{"job_type", c.type},
                            {"ready", c.ready},
                            {"delayed", c.delayed},
                            {"in_flight", c.in_flight},
                            {"dead", depth[c.type].dead},
                            {"paused", depth[c.type].paused}};
      row.update(CapacityFieldsJson(c));
      out.push_back(std::move(row));
    }
    std::cout << out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
    return kExitOk;
  }
  std::printf("%-32s %10s %10s %10s %10s %11s %9s %8s %10s\n", "JOB TYPE", "READY", "DELAYED",
              "IN_FLIGHT", "DEAD", "ARRIVALS/S", "MEAN_JOB", "NEEDED", "CONFIGURED");
  for (const TypeCapacity& c : rows) {
    std::string needed = "-";
    if (c.concurrency_needed) {
      char buf[32];
      std::snprintf(buf, sizeof buf, "%.1f", *c.concurrency_needed);
      needed = buf;
    }
    std::string configured =
        c.concurrency_configured > 0 ? std::to_string(c.concurrency_configured) : "-";
    const std::string name = depth[c.type].paused ? c.type + " (paused)" : c.type;
    std::printf("%-32s %10lld %10lld %10lld %10lld %11.2f %9s %8s %10s\n", name.c_str(),
                static_cast<long long>(c.ready), static_cast<long long>(c.delayed),
                static_cast<long long>(c.in_flight), static_cast<long long>(depth[c.type].dead),
                c.arrival_rate_per_s, JobTime(c.mean_job_seconds).c_str(), needed.c_str(),
                configured.c_str());
  }
  if (!rows.empty()) {
    std::printf(
        "\nARRIVALS/S and MEAN_JOB over the last %s; NEEDED = ARRIVALS/S x MEAN_JOB (Little's "
        "law): workers busy on average; CONFIGURED: concurrency per worker process.\n",
        FormatWindow(rows.front().window_seconds).c_str());
  }
  for (const TypeCapacity& c : rows) {
    for (const std::string& hint : c.hints) std::printf("%s: %s\n", c.type.c_str(), hint.c_str());
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
  std::cout << JobDetailJson(*job).dump(2) << "\n";
  return kExitOk;
}

namespace {

// One dead job (`id`) or every dead job of `type` ("" = all), through `one` or `all`;
// `past` names the action in the output ("replayed", "purged"); `action` the audit log's.
int DlqWrite(const std::string& config_path, const std::string& id, bool all,
             const std::string& command, const std::string& past, const std::string& type,
             const std::string& action, const std::function<Status(Queue&)>& one,
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
  AuditChange(*queue, CliActor(), action, type.empty() ? "all" : type, *count,
              nlohmann::json{{"all", true}, {"type", type}}.dump());
  std::cout << past << " " << *count << " job(s)\n";
  return kExitOk;
}

}  // namespace

int DlqReplay(const std::string& config_path, const std::string& id, bool all,
              const std::string& type) {
  return DlqWrite(
      config_path, id, all, "replay", "replayed", type, "dead.replay",
      [&](Queue& q) { return ReplayDeadJob(q, id, CliActor()); },
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
      config_path, id, all, "purge", "purged", type, "dead.delete",
      [&](Queue& q) { return DeleteDeadJob(q, id, CliActor()); },
      [&](Queue& q) { return q.PurgeAll(type); });
}

}  // namespace firebreak::cli
