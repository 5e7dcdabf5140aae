// Actions (DESIGN §5): outbound calls a handler asks firebreak to make reliably on its
// behalf. A handler's answer may carry
//   "actions":[{"integration":"slack-api","method":"POST","path":"/api/chat.postMessage",
//               "json":{...},"idempotency_key":"..."}]
// They become jobs of type "action:<integration>", stored in the same commit as the
// job's success (the outbox), deduped by their idempotency key (default
// "<job id>:<index>"), and run through the integration with an Idempotency-Key header;
// they retry and dead-letter like any job.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"
#include "config/config.h"
#include "queue/job.h"

namespace firebreak {

inline constexpr size_t kMaxActionsPerJob = 100;
inline constexpr std::string_view kActionTypePrefix = "action:";

std::string ActionJobType(const std::string& integration);
bool IsActionJobType(std::string_view type);

// How the worker runs one integration's action jobs: concurrency = max_concurrency, the
// default backoff, and a hard timeout that covers one whole call through the integration
// (every attempt, the waits between them, and waiting for a slot or a token).
JobConfig ActionJobConfig(const IntegrationConfig& integration);

// One action, validated: what an action job's payload holds.
struct Action {
  std::string integration;
  std::string method = "POST";
  std::string path;  // starts with '/', under the integration's base_url
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::string content_type;  // "application/json" for "json", else from headers or ""
  std::string idempotency_key;
  std::string job_id;  // the job whose handler returned it
  int index = 0;
};

// Validates a handler's "actions" array (JSON text) and builds the jobs to store with the
// parent's success. kInvalidArgument naming the action index and the problem: an unknown
// integration, a bad method, path or header, both "json" and "body", more than
// kMaxActionsPerJob.
Result<std::vector<NewJob>> BuildActionJobs(std::string_view actions_json, const Job& parent,
                                            const Config& config, int64_t now_ms);

// A handler's "enqueue" (issue 17): jobs of configured types, stored with its success in
// the same commit as its actions, optionally delayed:
//   [{"type": "<a [[jobs]] type>", "payload": <any JSON, default {}>,
//     "delay": "10m" | <ms> (default 0, at most 30 days),
//     "key": "<dedupe key>" (default "<parent id>:<index>")}]
// Each is deduped on "enqueue:<key>", so a handler that ran twice enqueues once.
// kInvalidArgument naming the entry's index and the problem; more than kMaxEnqueuePerJob.
inline constexpr size_t kMaxEnqueuePerJob = 100;
inline constexpr int64_t kMaxEnqueueDelayMs = 30LL * 24 * 3600 * 1000;
Result<std::vector<NewJob>> BuildEnqueuedJobs(std::string_view enqueue_json, const Job& parent,
                                              const Config& config, int64_t now_ms);

// The action inside an action job's payload (as BuildActionJobs stored it).
Result<Action> ParseActionPayload(std::string_view payload_json);

}  // namespace firebreak
