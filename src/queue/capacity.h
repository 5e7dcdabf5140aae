// The capacity read-out: how many concurrent workers each job type needs now, from the
// live numbers the queue counts (Queue::Throughput, Queue::Stats) and Little's law,
// L = λ·W: jobs arriving at λ per second that each keep a worker busy for W seconds on
// average hold L workers busy on average. Served by `firebreak queue stats` and
// GET /admin/api/v1/capacity. Pure functions; design note: docs/capacity.md.
#pragma once

#include <map>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <vector>

#include "queue/queue.h"

namespace firebreak {

// The window both read-outs use unless asked otherwise.
inline constexpr int64_t kCapacityWindowMs = 5 * 60 * 1000;

struct TypeCapacity {
  std::string type;
  double window_seconds = 0;      // the span the rates cover (TypeThroughput::window_ms)
  int64_t arrived = 0;            // jobs stored in the window
  int64_t finished = 0;           // attempts finished in the window
  double arrival_rate_per_s = 0;  // λ = arrived / window
  // W = handler time / attempts finished; none while no attempt finished in the window.
  std::optional<double> mean_job_seconds;
  // L = λ·W, the workers this type keeps busy on average at the current arrival rate;
  // none while W is unknown. Retries are not in λ (they add work a job at a time), so
  // frequent retries make this an underestimate.
  std::optional<double> concurrency_needed;
  // The type's `concurrency` in this config (per worker process; for action:<name>, the
  // integration's max_concurrency); 0 when the config has no such type.
  int concurrency_configured = 0;
  std::optional<double> utilization;  // L / concurrency_configured
  int64_t ready = 0;
  int64_t delayed = 0;
  int64_t in_flight = 0;
  // What an operator should look at, in words; empty when nothing stands out.
  std::vector<std::string> hints;
};

// One type's read-out. `configured` is its concurrency (0 = not configured).
TypeCapacity ComputeTypeCapacity(const TypeThroughput& throughput, const TypeDepth& depth,
                                 int configured);

// Every type in any of the three inputs, sorted by type; a type missing from one input
// counts as zero there (a configured type with no traffic has a row of zeros). Types
// without counts get the window of those with counts, or `asked_window_ms` (the window
// Throughput was asked for) when no type has any.
std::vector<TypeCapacity> ComputeCapacity(const std::vector<TypeThroughput>& throughput,
                                          const std::vector<TypeDepth>& depth,
                                          const std::map<std::string, int>& configured,
                                          int64_t asked_window_ms);

// A window for people: "4m40s", "45s", "1.5s".
std::string FormatWindow(double seconds);

// The read-out's fields as JSON (without depth, which callers add as they list it):
// window_seconds, arrived, finished, arrival_rate_per_s, mean_job_seconds,
// concurrency_needed, concurrency_configured, utilization (null where unknown), hints.
nlohmann::json CapacityFieldsJson(const TypeCapacity& capacity);

}  // namespace firebreak
