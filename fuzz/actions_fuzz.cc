// A handler's "actions" array (untrusted: any bot, any language): BuildActionJobs must never
// crash, and every job it builds must carry a payload that ParseActionPayload reads back
// to the same integration and path, with a dedupe key and a JSON payload. The same input
// as an "enqueue" array: BuildEnqueuedJobs builds only configured types, with a JSON
// payload, one dedupe key and a delay within 30 days.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "config/config.h"
#include "ingress/json_body.h"
#include "worker/actions.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace firebreak;
  static const Config config = [] {
    Config c;
    IntegrationConfig api;
    api.name = "slack-api";
    api.base_url = "https://slack.com";
    c.integrations.push_back(api);
    JobConfig reminder;
    reminder.type = "reminder";
    c.jobs.push_back(reminder);
    return c;
  }();
  Job parent;
  parent.id = "01JFUZZPARENT0000000000000";
  parent.type = "slack.event";
  parent.source = "slack";
  parent.max_attempts = 5;
  parent.traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
  std::string_view input(reinterpret_cast<const char*>(data), size);
  constexpr int64_t kNow = 1'700'000'000'000;
  Result<std::vector<NewJob>> enqueued = BuildEnqueuedJobs(input, parent, config, kNow);
  if (enqueued.ok()) {
    for (const NewJob& job : *enqueued) {
      if (job.type != "reminder" || job.dedupe_keys.size() != 1) std::abort();
      if (job.run_at_ms < kNow || job.run_at_ms > kNow + kMaxEnqueueDelayMs) std::abort();
      if (!ParseJsonBody(job.payload_json).ok()) std::abort();
    }
  }
  Result<std::vector<NewJob>> jobs = BuildActionJobs(input, parent, config, kNow);
  if (!jobs.ok()) return 0;
  for (const NewJob& job : *jobs) {
    if (job.dedupe_keys.size() != 1 || job.type != "action:slack-api") std::abort();
    if (!ParseJsonBody(job.payload_json).ok()) std::abort();
    Result<Action> action = ParseActionPayload(job.payload_json);
    if (!action.ok() || action->integration != "slack-api" || action->path.empty() ||
        action->path.front() != '/') {
      std::abort();
    }
  }
  return 0;
}
