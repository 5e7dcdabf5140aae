// A Prometheus histogram whose Observe is two relaxed atomic adds and no lock:
// prometheus-cpp 1.0's Histogram takes a mutex per observation, and every webhook,
// job attempt and integration call records one. Families of them are serialized
// with prometheus-cpp's own data model and text serializer (see Metrics).
#pragma once

#include <prometheus/client_metric.h>
#include <prometheus/metric_family.h>

#include <atomic>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace firebreak {

class Histogram {
 public:
  // `bounds`: the buckets' upper bounds, ascending; +Inf is implied.
  explicit Histogram(std::vector<double> bounds);
  Histogram(const Histogram&) = delete;
  Histogram& operator=(const Histogram&) = delete;

  // Thread-safe and lock-free.
  void Observe(double value);
  // A read-out with cumulative bucket counts (ending with +Inf). Concurrent Observes
  // may be half-visible (in a bucket, not yet in the sum): fine for a scrape.
  prometheus::ClientMetric::Histogram Snapshot() const;

 private:
  const std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> counts_;  // per bucket (not cumulative), +Inf last
  std::atomic<double> sum_{0};
};

// One metric name with a histogram per label set. Add is for start-up (it locks);
// the returned pointer stays valid and is what the hot path uses.
class HistogramFamily {
 public:
  HistogramFamily(std::string name, std::string help, std::vector<double> bounds)
      : name_(std::move(name)), help_(std::move(help)), bounds_(std::move(bounds)) {}

  Histogram& Add(const std::map<std::string, std::string>& labels);
  prometheus::MetricFamily Collect() const;

 private:
  const std::string name_;
  const std::string help_;
  const std::vector<double> bounds_;
  mutable std::mutex mu_;  // guards the map, not the histograms
  std::map<std::map<std::string, std::string>, std::unique_ptr<Histogram>> histograms_;
};

}  // namespace firebreak
