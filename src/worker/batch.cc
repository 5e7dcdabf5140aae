#include "worker/batch.h"

#include <algorithm>

#include "common/json_string.h"

namespace firebreak {

int FormingRuns(const BatchConfig& batch, size_t held) {
  if (batch.max <= 0) return 0;
  return static_cast<int>((held + static_cast<size_t>(batch.max) - 1) /
                          static_cast<size_t>(batch.max));
}

BatchClaim PlanBatchClaim(const BatchConfig& batch, int concurrency, int running, size_t held,
                          int free_in_flight) {
  const int forming = FormingRuns(batch, held);
  const int runs = std::min(concurrency - running, forming + std::max(free_in_flight, 0));
  const int64_t jobs = static_cast<int64_t>(runs) * batch.max - static_cast<int64_t>(held);
  if (jobs <= 0) return {};
  return {static_cast<int>(jobs), runs - forming};
}

void BatchFormer::Add(Job job, TimePoint claimed_at) {
  held_.push_back({std::move(job), claimed_at});
}

std::vector<Job> BatchFormer::TakeDue(TimePoint now) {
  const auto max = static_cast<size_t>(batch_.max);
  if (held_.size() >= max) return TakeFront(max);
  if (!held_.empty() && now >= held_.front().claimed_at + batch_.wait) {
    return TakeFront(held_.size());
  }
  return {};
}

std::optional<BatchFormer::TimePoint> BatchFormer::Deadline() const {
  if (held_.empty()) return std::nullopt;
  return held_.front().claimed_at + batch_.wait;
}

std::vector<Job> BatchFormer::TakeAll() { return TakeFront(held_.size()); }

std::vector<Job> BatchFormer::TakeFront(size_t n) {
  std::vector<Job> jobs;
  jobs.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    jobs.push_back(std::move(held_.front().job));
    held_.pop_front();
  }
  return jobs;
}

std::string BuildBatchEnvelope(const std::string& batch_id, const std::string& type,
                               const std::vector<std::string>& envelopes) {
  size_t size = 64 + batch_id.size() + type.size();
  for (const std::string& envelope : envelopes) size += envelope.size() + 1;
  std::string out;
  out.reserve(size);
  out.append("{\"id\":");
  AppendJsonString(out, batch_id);
  out.append(",\"type\":");
  AppendJsonString(out, type);
  out.append(",\"batch\":[");
  for (size_t i = 0; i < envelopes.size(); ++i) {
    if (i > 0) out.push_back(',');
    out.append(envelopes[i]);
  }
  out.append("]}");
  return out;
}

}  // namespace firebreak
