#include "ingress/job_key.h"

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

void AssignJobKey(const JobConfig& config, NewJob& job) {
  job.ordering_key = JobKeyOf(config, job.payload_json, job.search_keys);
  job.key_limit = config.concurrency_per_key;
}

}  // namespace firebreak
