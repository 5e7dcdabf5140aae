#include "ingress/job_key.h"

#include <algorithm>

#include "ingress/json_body.h"

namespace firebreak {

std::string JobKeyOf(const JobConfig& job, std::string_view payload_json,
                     const std::vector<std::string>& search_keys) {
  if (job.key.empty()) return "";
  if (job.key.front() != '/') {
    // A search key's name: its "name:value" entry, if the source found one.
    for (const std::string& entry : search_keys) {
      if (entry.size() > job.key.size() && entry.compare(0, job.key.size(), job.key) == 0 &&
          entry[job.key.size()] == ':') {
        return entry.substr(job.key.size() + 1);
      }
    }
    return "";
  }
  Result<JsonBody> payload = ParseJsonBody(payload_json);
  if (!payload.ok()) return "";
  Result<std::string> key = payload->KeyTextAt(job.key);
  return key.ok() ? std::move(key).value() : std::string();
}

int JobPriorityOf(const JobConfig& config, std::string_view payload_json, int fallback) {
  if (config.priority_from.empty()) return fallback;
  Result<JsonBody> payload = ParseJsonBody(payload_json);
  if (!payload.ok()) return fallback;
  simdjson::dom::element value;
  if (payload->root().at_pointer(config.priority_from).get(value) != simdjson::SUCCESS) {
    return fallback;
  }
  int64_t level = 0;
  if (value.get(level) != simdjson::SUCCESS) return fallback;
  return static_cast<int>(std::clamp<int64_t>(level, 0, kMaxPriority));
}

void AssignJobKey(const JobConfig& config, NewJob& job) {
  job.ordering_key = JobKeyOf(config, job.payload_json, job.search_keys);
  job.key_limit = config.concurrency_per_key;
  job.priority = JobPriorityOf(config, job.payload_json, job.priority);
}

}  // namespace firebreak
