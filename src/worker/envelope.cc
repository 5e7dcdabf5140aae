#include "worker/envelope.h"

#include "common/json_string.h"
#include "common/units.h"
#include "telemetry/log.h"

namespace firebreak {

std::string BuildEnvelope(const Job& job, int64_t deadline_ms) {
  std::string out;
  out.reserve(256 + job.payload_json.size() + job.headers_json.size());
  auto field = [&out](const char* key, const std::string& value) {
    out.append(",\"").append(key).append("\":");
    AppendJsonString(out, value);
  };
  out.append("{\"id\":");
  AppendJsonString(out, job.id);
  field("type", job.type);
  field("source", job.source);
  field("dedupe_key", job.dedupe_key);
  out.append(",\"attempt\":").append(std::to_string(job.attempt));
  out.append(",\"max_attempts\":").append(std::to_string(job.max_attempts));
  field("enqueued_at", FormatTimestampMs(job.enqueued_at_ms));
  field("deadline", FormatTimestampMs(deadline_ms));
  field("traceparent", job.traceparent);
  if (!job.ordering_key.empty()) field("ordering_key", job.ordering_key);
  out.append(",\"headers\":").append(job.headers_json.empty() ? "{}" : job.headers_json);
  out.append(",\"payload\":").append(job.payload_json.empty() ? "null" : job.payload_json);
  out.append("}");
  return out;
}

}  // namespace firebreak
