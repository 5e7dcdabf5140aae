// The attempts running right now in this worker process, by job id, with their trace
// context: the sidecar continues a job's trace when a handler's call names the job
// (X-Firebreak-Job-Id) but carries no traceparent of its own.
#pragma once

#include <map>
#include <mutex>
#include <string>

namespace firebreak {

// Thread-safe.
class RunningJobs {
 public:
  void Add(const std::string& job_id, const std::string& traceparent) {
    std::lock_guard lock(mu_);
    jobs_[job_id] = traceparent;
  }
  void Remove(const std::string& job_id) {
    std::lock_guard lock(mu_);
    jobs_.erase(job_id);
  }
  // "" when the job is not running here.
  std::string Traceparent(const std::string& job_id) const {
    std::lock_guard lock(mu_);
    auto it = jobs_.find(job_id);
    return it == jobs_.end() ? std::string() : it->second;
  }

 private:
  mutable std::mutex mu_;
  std::map<std::string, std::string> jobs_;  // guarded by mu_
};

}  // namespace firebreak
