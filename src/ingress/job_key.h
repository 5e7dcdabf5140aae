// A job's flow key ([[jobs]] `key`, queue/job.h NewJob::ordering_key): the value at a
// JSON pointer in its payload, or the value of one of its search keys; and its priority
// (`priority_from`). One place for every way a job is made (webhooks, handler follow-ups,
// schedules), so they mean the same thing wherever the job came from.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "queue/job.h"

namespace firebreak {

// The value of `key` (a JSON pointer, or the name of one of the job's search keys,
// "name:value") for a job with this payload and these search keys; "" when `key` is ""
// or the job has no value there. A payload that is not JSON has none.
std::string KeyValueOf(const std::string& key, std::string_view payload_json,
                       const std::vector<std::string>& search_keys);

// The flow key of a job of type `job` (its `key`), "" when it runs unkeyed.
std::string JobKeyOf(const JobConfig& job, std::string_view payload_json,
                     const std::vector<std::string>& search_keys);

// The priority at `config.priority_from` in the payload (an integer, clamped to
// 0..kMaxPriority), or `fallback` (its source's) when there is none.
int JobPriorityOf(const JobConfig& config, std::string_view payload_json, int fallback);

// Sets job.ordering_key, job.key_limit, (from priority_from) job.priority and (debounce)
// job.debounce_key from its type's config, and delays a debounced job's run_at to
// enqueued_at + period: call it after the times are set. job.priority is kept when the
// payload names none.
void AssignJobKey(const JobConfig& config, NewJob& job);

}  // namespace firebreak
