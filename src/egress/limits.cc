#include "egress/limits.h"

#include <algorithm>

namespace firebreak::egress {

TokenBucket::TokenBucket(double per_second, int burst, int64_t now_us)
    : per_us_(per_second / 1e6),
      burst_(std::max(1, burst)),
      tokens_(std::max(1, burst)),
      last_us_(now_us) {}

void TokenBucket::Refill(int64_t now_us) {
  if (now_us > last_us_) {
    tokens_ = std::min(burst_, tokens_ + static_cast<double>(now_us - last_us_) * per_us_);
    last_us_ = now_us;
  }
}

std::optional<int64_t> TokenBucket::Reserve(int64_t now_us, int64_t max_wait_us) {
  Refill(now_us);
  if (tokens_ >= 1) {
    tokens_ -= 1;
    return 0;
  }
  if (per_us_ <= 0) return std::nullopt;
  // The token this caller gets arrives once the deficit (earlier reservations included)
  // has refilled.
  const double wait = (1 - tokens_) / per_us_;
  if (wait > static_cast<double>(max_wait_us)) return std::nullopt;
  tokens_ -= 1;
  return static_cast<int64_t>(wait + 0.999);
}

double TokenBucket::Available(int64_t now_us) {
  Refill(now_us);
  return tokens_;
}

Bulkhead::Bulkhead(int max_concurrent, int max_queued)
    : max_concurrent_(std::max(1, max_concurrent)), max_queued_(std::max(0, max_queued)) {}

Bulkhead::Admission Bulkhead::Acquire(uint64_t ticket) {
  if (in_flight_ < max_concurrent_ && waiting_.empty()) {
    ++in_flight_;
    return Admission::kNow;
  }
  if (static_cast<int>(waiting_.size()) >= max_queued_) return Admission::kRejected;
  waiting_.push_back(ticket);
  return Admission::kQueued;
}

std::optional<uint64_t> Bulkhead::Release() {
  if (!waiting_.empty()) {
    uint64_t next = waiting_.front();
    waiting_.pop_front();
    return next;  // the slot passes straight on: in_flight_ stays the same
  }
  if (in_flight_ > 0) --in_flight_;
  return std::nullopt;
}

bool Bulkhead::Cancel(uint64_t ticket) {
  auto it = std::find(waiting_.begin(), waiting_.end(), ticket);
  if (it == waiting_.end()) return false;
  waiting_.erase(it);
  return true;
}

}  // namespace firebreak::egress
