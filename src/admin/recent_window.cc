#include "admin/recent_window.h"

#include <cmath>

namespace firebreak {
namespace {

// `now` minus `base`, bucket by bucket (both cumulative; a base of other buckets or none
// counts as zero).
prometheus::ClientMetric::Histogram Difference(const prometheus::ClientMetric::Histogram& now,
                                               const prometheus::ClientMetric::Histogram* base) {
  prometheus::ClientMetric::Histogram out = now;
  if (base == nullptr || base->bucket.size() != now.bucket.size()) return out;
  for (size_t i = 0; i < out.bucket.size(); ++i) {
    uint64_t before = base->bucket[i].cumulative_count;
    out.bucket[i].cumulative_count -= std::min(before, out.bucket[i].cumulative_count);
  }
  out.sample_count -= std::min(base->sample_count, out.sample_count);
  out.sample_sum -= base->sample_sum;
  return out;
}

}  // namespace

std::optional<double> HistogramQuantile(double q, const prometheus::ClientMetric::Histogram& h) {
  if (h.bucket.empty() || h.bucket.back().cumulative_count == 0) return std::nullopt;
  const double rank = q * static_cast<double>(h.bucket.back().cumulative_count);
  double lower = 0;
  uint64_t below = 0;
  for (const prometheus::ClientMetric::Bucket& bucket : h.bucket) {
    if (static_cast<double>(bucket.cumulative_count) >= rank && bucket.cumulative_count > below) {
      if (std::isinf(bucket.upper_bound)) return lower;
      double inside = static_cast<double>(bucket.cumulative_count - below);
      return lower + (bucket.upper_bound - lower) * (rank - static_cast<double>(below)) / inside;
    }
    if (!std::isinf(bucket.upper_bound)) lower = bucket.upper_bound;
    below = bucket.cumulative_count;
  }
  return lower;
}

RecentWindow::RecentWindow(std::chrono::milliseconds window, std::chrono::milliseconds spacing)
    : window_ms_(window.count()), spacing_ms_(spacing.count()) {}

std::map<std::string, WindowStats> RecentWindow::Update(int64_t now_ms,
                                                        const SeriesReadings& current) {
  std::lock_guard lock(mu_);
  // Samples older than the window go, except the newest of them while nothing newer is
  // old enough to be a base of its own.
  while (samples_.size() >= 2 && now_ms - samples_[1].at_ms >= window_ms_) samples_.pop_front();
  std::map<std::string, WindowStats> out;
  const Sample* base = samples_.empty() ? nullptr : &samples_.front();
  const double seconds =
      base == nullptr ? 0 : static_cast<double>(std::max<int64_t>(0, now_ms - base->at_ms)) / 1000;
  for (const auto& [name, reading] : current) {
    const SeriesReading* before = nullptr;
    if (base != nullptr) {
      auto it = base->readings.find(name);
      if (it != base->readings.end()) before = &it->second;
    }
    WindowStats& stats = out[name];
    stats.seconds = seconds;
    uint64_t events = reading.events - std::min(reading.events, before ? before->events : 0);
    stats.rate_per_s = seconds > 0 ? static_cast<double>(events) / seconds : 0;
    prometheus::ClientMetric::Histogram delta =
        Difference(reading.histogram, before ? &before->histogram : nullptr);
    stats.p50_seconds = HistogramQuantile(0.5, delta);
    stats.p99_seconds = HistogramQuantile(0.99, delta);
  }
  if (samples_.empty() || now_ms - samples_.back().at_ms >= spacing_ms_) {
    samples_.push_back(Sample{now_ms, current});
  }
  return out;
}

}  // namespace firebreak
