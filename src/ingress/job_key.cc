#include "ingress/job_key.h"

#include <algorithm>

#include "ingress/json_body.h"

namespace firebreak {

std::string KeyValueOf(const std::string& key, std::string_view payload_json,
                       const std::vector<std::string>& search_keys) {
  if (key.empty()) return "";
  if (key.front() != '/') {
    // A search key's name: its "name:value" entry, if the source found one.
    for (const std::string& entry : search_keys) {
      if (entry.size() > key.size() && entry.compare(0, key.size(), key) == 0 &&
          entry[key.size()] == ':') {
        return entry.substr(key.size() + 1);
      }
    }
    return "";
  }
  Result<JsonBody> payload = ParseJsonBody(payload_json);
  if (!payload.ok()) return "";
  Result<std::string> value = payload->KeyTextAt(key);
  return value.ok() ? std::move(value).value() : std::string();
}

std::string JobKeyOf(const JobConfig& job, std::string_view payload_json,
                     const std::vector<std::string>& search_keys) {
  return KeyValueOf(job.key, payload_json, search_keys);
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
  if (config.debounce_period.count() > 0) {
    job.debounce_key = KeyValueOf(config.debounce_key, job.payload_json, job.search_keys);
    if (!job.debounce_key.empty()) {
      job.run_at_ms = std::max(job.run_at_ms, job.enqueued_at_ms + config.debounce_period.count());
    }
  }
}

}  // namespace firebreak
