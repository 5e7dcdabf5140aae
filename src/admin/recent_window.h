// Rates and latency quantiles over the last few minutes, from the process's counters and
// histograms (telemetry/metrics.h), which only ever grow: each read is kept as a sample,
// and a read-out is the difference between now and the oldest sample still inside the
// window. Samples are taken when the admin API is read (no timer), so after a quiet
// spell the span is longer than the window: WindowStats::seconds says what it covers.
#pragma once

#include <prometheus/client_metric.h>

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <string>

namespace firebreak {

// One series' totals at one moment.
struct SeriesReading {
  uint64_t events = 0;                            // a counter (requests, calls)
  prometheus::ClientMetric::Histogram histogram;  // its latency histogram (may be empty)
};
using SeriesReadings = std::map<std::string, SeriesReading>;

struct WindowStats {
  double seconds = 0;     // the span the numbers cover
  double rate_per_s = 0;  // events / seconds
  // Latency quantiles of the observations in the span; none without observations.
  std::optional<double> p50_seconds;
  std::optional<double> p99_seconds;
};

// The q-quantile (0 < q < 1) of a histogram, interpolated linearly inside its bucket as
// Prometheus' histogram_quantile does; an observation in the +Inf bucket counts as the
// largest finite bound. None when the histogram has no observations.
std::optional<double> HistogramQuantile(double q, const prometheus::ClientMetric::Histogram& h);

// Thread-safe.
class RecentWindow {
 public:
  explicit RecentWindow(std::chrono::milliseconds window = std::chrono::minutes(5),
                        std::chrono::milliseconds spacing = std::chrono::seconds(10));

  // Each series' numbers between the base sample and `current` (a series missing from
  // the base counts from zero), then keeps `current` as a sample when the newest is at
  // least `spacing` old. The base is the oldest sample within the window, else the
  // newest before it; with no sample yet, every number is zero over zero seconds.
  std::map<std::string, WindowStats> Update(int64_t now_ms, const SeriesReadings& current);

 private:
  struct Sample {
    int64_t at_ms = 0;
    SeriesReadings readings;
  };

  const int64_t window_ms_;
  const int64_t spacing_ms_;
  std::mutex mu_;
  std::deque<Sample> samples_;  // oldest first; guarded by mu_
};

}  // namespace firebreak
