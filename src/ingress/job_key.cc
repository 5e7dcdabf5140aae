#include "ingress/job_key.h"

#include <algorithm>
#include <optional>

#include "ingress/json_body.h"

namespace firebreak {
namespace {

// A job's payload, parsed at most once however many of key, priority_from and debounce
// read it: at ingress it is a second parse of every keyed webhook's body already.
class LazyPayload {
 public:
  explicit LazyPayload(std::string_view json) : json_(json) {}
  // Null when the payload is not JSON.
  const JsonBody* Get() {
    if (!parsed_) {
      parsed_ = true;
      Result<JsonBody> body = ParseJsonBody(json_);
      if (body.ok()) body_.emplace(*body);
    }
    return body_ ? &*body_ : nullptr;
  }

 private:
  std::string_view json_;
  bool parsed_ = false;
  std::optional<JsonBody> body_;
};

std::string ValueAt(const std::string& key, LazyPayload& payload,
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
  const JsonBody* body = payload.Get();
  if (body == nullptr) return "";
  Result<std::string> value = body->KeyTextAt(key);
  return value.ok() ? std::move(value).value() : std::string();
}

int PriorityAt(const std::string& pointer, LazyPayload& payload, int fallback) {
  if (pointer.empty()) return fallback;
  const JsonBody* body = payload.Get();
  if (body == nullptr) return fallback;
  simdjson::dom::element value;
  if (body->root().at_pointer(pointer).get(value) != simdjson::SUCCESS) return fallback;
  int64_t level = 0;
  if (value.get(level) != simdjson::SUCCESS) return fallback;
  return static_cast<int>(std::clamp<int64_t>(level, 0, kMaxPriority));
}

}  // namespace

std::string KeyValueOf(const std::string& key, std::string_view payload_json,
                       const std::vector<std::string>& search_keys) {
  LazyPayload payload(payload_json);
  return ValueAt(key, payload, search_keys);
}

std::string JobKeyOf(const JobConfig& job, std::string_view payload_json,
                     const std::vector<std::string>& search_keys) {
  return KeyValueOf(job.key, payload_json, search_keys);
}

int JobPriorityOf(const JobConfig& config, std::string_view payload_json, int fallback) {
  LazyPayload payload(payload_json);
  return PriorityAt(config.priority_from, payload, fallback);
}

void AssignJobKey(const JobConfig& config, NewJob& job) {
  LazyPayload payload(job.payload_json);
  job.ordering_key = ValueAt(config.key, payload, job.search_keys);
  job.key_limit = config.concurrency_per_key;
  job.priority = PriorityAt(config.priority_from, payload, job.priority);
  if (config.debounce_period.count() > 0) {
    job.debounce_key = ValueAt(config.debounce_key, payload, job.search_keys);
    if (!job.debounce_key.empty()) {
      job.run_at_ms = std::max(job.run_at_ms, job.enqueued_at_ms + config.debounce_period.count());
    }
  }
}

}  // namespace firebreak
