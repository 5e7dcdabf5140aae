// How jobs look to operators, shared by the admin API and the CLI so both show the same
// fields under the same names (DESIGN §7): JSON views, filters parsed from query
// parameters or `--filter k=v,...`, and the fingerprint dead jobs are grouped by.
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "common/status.h"
#include "queue/job.h"
#include "queue/queue.h"

namespace firebreak {

// A list row: everything but the payload, headers and attempts.
nlohmann::json JobSummaryJson(const Job& job);
// The whole job: summary, payload, headers (as stored: never secrets) and every attempt.
nlohmann::json JobDetailJson(const Job& job);

// JobDetailJson of job `id` with what links to it, each with its own attempts: "actions"
// (the jobs its success stored: their attempts are its outbound calls) and "replays".
// One answer that tells an event's whole story (GET /jobs/{id}, `firebreak jobs show`).
Result<nlohmann::json> JobStoryJson(Queue& queue, const std::string& id);

// Dead jobs whose last errors differ only in numbers, ids or quoted values share a
// fingerprint (12 hex digits): "HTTP 503 from api.slack.com after 3012 ms" and "... 2990
// ms" are one problem, shown once with a count.
std::string NormalizeError(std::string_view error);
std::string ErrorFingerprint(std::string_view error);

// Which dead jobs a bulk operation or a grouped list covers.
struct DeadFilter {
  JobFilter jobs;           // jobs.state is always "dead"
  std::string fingerprint;  // "" = any
};

// The filter keys operators write: state type source key q from to trace_id fingerprint
// (from/to: RFC 3339 or epoch milliseconds). kInvalidArgument names an unknown key or
// a bad value. `params` from a query string or from ParseFilterList.
Result<JobFilter> JobFilterFromParams(const std::map<std::string, std::string>& params);
Result<DeadFilter> DeadFilterFromParams(std::map<std::string, std::string> params);
// "type=slack.event,fingerprint=ab12cd34ef56" (the CLI's --filter) as a map.
Result<std::map<std::string, std::string>> ParseFilterList(std::string_view text);
// The filter as the JSON object the audit log and the operation views show.
nlohmann::json DeadFilterJson(const DeadFilter& filter);

}  // namespace firebreak
