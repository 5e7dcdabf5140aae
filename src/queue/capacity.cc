#include "queue/capacity.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>

namespace firebreak {
namespace {

std::string Format(const char* format, double value) {
  char buf[64];
  std::snprintf(buf, sizeof buf, format, value);
  return buf;
}

nlohmann::json OrNull(const std::optional<double>& value) {
  return value ? nlohmann::json(*value) : nlohmann::json(nullptr);
}

}  // namespace

std::string FormatWindow(double seconds) {
  if (seconds >= 60) {
    auto whole = static_cast<long long>(std::llround(seconds));
    std::string out = std::to_string(whole / 60) + "m";
    if (whole % 60 != 0) out += std::to_string(whole % 60) + "s";
    return out;
  }
  return Format(seconds >= 10 ? "%.0fs" : "%.1fs", seconds);
}

TypeCapacity ComputeTypeCapacity(const TypeThroughput& throughput, const TypeDepth& depth,
                                 int configured) {
  TypeCapacity c;
  c.type = !throughput.type.empty() ? throughput.type : depth.type;
  c.window_seconds = static_cast<double>(throughput.window_ms) / 1000.0;
  c.arrived = throughput.arrived;
  c.finished = throughput.finished;
  c.concurrency_configured = std::max(0, configured);
  c.ready = depth.ready;
  c.delayed = depth.delayed;
  c.in_flight = depth.in_flight;
  if (c.window_seconds > 0)
    c.arrival_rate_per_s = static_cast<double>(c.arrived) / c.window_seconds;
  if (c.finished > 0) {
    c.mean_job_seconds = static_cast<double>(std::max<int64_t>(0, throughput.busy_ms)) / 1000.0 /
                         static_cast<double>(c.finished);
    c.concurrency_needed = c.arrival_rate_per_s * *c.mean_job_seconds;
    if (c.concurrency_configured > 0) {
      c.utilization = *c.concurrency_needed / c.concurrency_configured;
    }
  }

  if (c.concurrency_configured == 0) {
    c.hints.push_back("not a job type of this config: no worker with it runs these jobs");
  }
  if (!c.mean_job_seconds && (c.arrived > 0 || c.in_flight > 0)) {
    c.hints.push_back("no attempt finished in the last " + FormatWindow(c.window_seconds) +
                      ": mean job time (and so the concurrency needed) is not known yet");
  }
  if (c.utilization && *c.utilization > 1.0) {
    const auto processes =
        static_cast<long long>(std::ceil(*c.concurrency_needed / c.concurrency_configured - 1e-9));
    c.hints.push_back("needs " + Format("%.1f", *c.concurrency_needed) +
                      " in flight, more than concurrency " +
                      std::to_string(c.concurrency_configured) +
                      " per worker process: run at least " + std::to_string(processes) +
                      " worker processes or raise concurrency (and worker.max_in_flight)");
  }
  if (c.ready > 0 && c.arrived > c.finished) {
    c.hints.push_back("backlog growing: " + std::to_string(c.ready) + " ready, " +
                      std::to_string(c.arrived) + " arrived and " + std::to_string(c.finished) +
                      " attempts finished in the last " + FormatWindow(c.window_seconds));
  }
  return c;
}

std::vector<TypeCapacity> ComputeCapacity(const std::vector<TypeThroughput>& throughput,
                                          const std::vector<TypeDepth>& depth,
                                          const std::map<std::string, int>& configured,
                                          int64_t asked_window_ms) {
  struct Inputs {
    TypeThroughput throughput;
    TypeDepth depth;
    int configured = 0;
  };
  std::map<std::string, Inputs> by_type;
  // Every row shares one window; a type without arrivals or finishes still gets it.
  int64_t window_ms = 0;
  if (throughput.empty()) window_ms = std::max<int64_t>(0, asked_window_ms);
  for (const TypeThroughput& t : throughput) {
    by_type[t.type].throughput = t;
    window_ms = std::max(window_ms, t.window_ms);
  }
  for (const TypeDepth& d : depth) by_type[d.type].depth = d;
  for (const auto& [type, concurrency] : configured) by_type[type].configured = concurrency;

  std::vector<TypeCapacity> out;
  out.reserve(by_type.size());
  for (auto& [type, inputs] : by_type) {
    inputs.throughput.type = type;
    inputs.depth.type = type;
    if (inputs.throughput.window_ms == 0) inputs.throughput.window_ms = window_ms;
    out.push_back(ComputeTypeCapacity(inputs.throughput, inputs.depth, inputs.configured));
  }
  return out;
}

nlohmann::json CapacityFieldsJson(const TypeCapacity& c) {
  return {
      {"window_seconds", c.window_seconds},
      {"arrived", c.arrived},
      {"finished", c.finished},
      {"arrival_rate_per_s", c.arrival_rate_per_s},
      {"mean_job_seconds", OrNull(c.mean_job_seconds)},
      {"concurrency_needed", OrNull(c.concurrency_needed)},
      {"concurrency_configured", c.concurrency_configured > 0
                                     ? nlohmann::json(c.concurrency_configured)
                                     : nlohmann::json(nullptr)},
      {"utilization", OrNull(c.utilization)},
      {"hints", c.hints},
  };
}

}  // namespace firebreak
