#include "telemetry/queue_gauges.h"

namespace firebreak {
namespace {

constexpr std::chrono::seconds kFresh{1};
// Scrapes waiting on one hung read: beyond this the oldest are let go (their scrape
// was answered with the last values long ago).
constexpr size_t kMaxWaiting = 64;

}  // namespace

QueueGauges::~QueueGauges() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void QueueGauges::Refresh(std::function<void()> done) {
  metrics_.SetQueueWritable(queue_.Health().ready);
  metrics_.SetDurabilityDegraded(!queue_.DurabilityShortfall().empty());
  {
    std::lock_guard lock(mu_);
    if (stop_) return;
    const bool fresh = std::chrono::steady_clock::now() - last_read_ < kFresh;
    if (!fresh || !waiting_.empty()) {
      if (waiting_.size() >= kMaxWaiting) waiting_.erase(waiting_.begin());
      waiting_.push_back(std::move(done));
      if (!thread_.joinable()) thread_ = std::thread([this] { Run(); });
      wake_.notify_one();
      return;
    }
  }
  if (done) done();
}

void QueueGauges::Run() {
  std::unique_lock lock(mu_);
  for (;;) {
    wake_.wait(lock, [this] { return stop_ || !waiting_.empty(); });
    if (stop_) return;
    lock.unlock();
    ReadDepth();
    lock.lock();
    if (stop_) return;  // the owner is going away: its callbacks' executors may be too
    last_read_ = std::chrono::steady_clock::now();
    std::vector<std::function<void()>> done;
    done.swap(waiting_);
    lock.unlock();
    for (auto& callback : done) {
      if (callback) callback();
    }
    lock.lock();
  }
}

void QueueGauges::ReadDepth() {
  auto stats = queue_.Stats();
  if (!stats.ok()) return;
  // Stats lists only types that still have jobs: a type seen before and missing now has
  // drained, and its gauges must say 0 rather than keep the last value.
  std::set<std::string> drained = types_seen_;
  for (const TypeDepth& d : *stats) {
    drained.erase(d.type);
    types_seen_.insert(d.type);
    metrics_.SetQueueDepth(d.type, "ready", static_cast<double>(d.ready));
    metrics_.SetQueueDepth(d.type, "delayed", static_cast<double>(d.delayed));
    metrics_.SetQueueDepth(d.type, "in_flight", static_cast<double>(d.in_flight));
    metrics_.SetQueueDepth(d.type, "dead", static_cast<double>(d.dead));
  }
  for (const std::string& type : drained) {
    for (const char* state : {"ready", "delayed", "in_flight", "dead"}) {
      metrics_.SetQueueDepth(type, state, 0);
    }
  }
}

}  // namespace firebreak
